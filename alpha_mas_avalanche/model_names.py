"""Names of the reference models (no torch: cheap for the CLI and the config checks)."""

#: ``make_model`` names: ``mlp`` (784-400-400 for MNIST, 64-400-400 for digits), ``cnn`` (CIFAR-10).
MODELS = ("mlp", "cnn")
