"""Names of the reference models (no torch: cheap for the CLI and the config checks)."""

#: ``make_model`` names: ``mlp`` (784-400-400 for MNIST, 64-400-400 for digits), ``cnn`` (CIFAR-10),
#: ``mlp256`` (784-256-256: the MNIST net of Aljundi et al.'s MAS reference code), ``vgg16``
#: (torchvision's VGG-16 conv layers, no pretrained weights, 32x32 input).
MODELS = ("mlp", "mlp256", "cnn", "vgg16")
