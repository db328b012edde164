"""Models: the reference architectures and the features/classifier contract."""
from __future__ import annotations

import pytest
import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from avalanche.models.dynamic_modules import avalanche_model_adaptation
from torch import nn

from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.models import make_model


def test_mlp_has_two_hidden_layers_of_400_and_multi_head():
    model = make_model("mlp", input_shape=(1, 28, 28))
    linears = [m for m in model.trunk if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 400), (400, 400)]
    assert isinstance(model, MultiTaskModule)
    assert isinstance(model.classifier, MultiHeadClassifier)


def test_multi_head_contract_on_real_experiences():
    bm = make_benchmark("split_digits")
    model = make_model("mlp", input_shape=(1, 8, 8))
    for experience in bm.train_stream[:2]:
        avalanche_model_adaptation(model, experience)  # what the strategy does
    x = torch.stack([bm.test_stream[1].dataset[i][0] for i in range(5)])
    tasks = torch.full((5,), 1)
    out = model(x, tasks)
    assert out.shape == (5, 2)
    torch.testing.assert_close(out, model.classifier(model.features(x), tasks))
    # head 1 is Linear on the same features
    head = model.classifier.classifiers["1"].classifier
    torch.testing.assert_close(out, head(model.features(x)))


def test_class_incremental_contract_and_cnn_shapes():
    model = make_model("cnn", input_shape=(3, 32, 32), scenario="class")
    assert not isinstance(model, MultiTaskModule)
    assert isinstance(model.classifier, IncrementalClassifier)
    x = torch.randn(4, 3, 32, 32)
    features = model.features(x)
    assert features.shape == (4, 256)
    torch.testing.assert_close(model(x), model.classifier(features))


@pytest.mark.parametrize("kwargs, name", [
    (dict(name="resnet", input_shape=(1, 8, 8)), "name"),
    (dict(name="mlp", input_shape=(1, 8, 8), scenario="x"), "scenario"),
    (dict(name="cnn", input_shape=(1, 28, 28)), "input_shape"),
])
def test_invalid_model_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_model(**kwargs)


# ---------------------------------------------------------------- vgg16
VGG16_CONV_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def _vgg16_parameters_by_hand(in_channels: int = 3) -> int:
    """13 3x3 convolutions (weights + biases), VGG-16's configuration D."""
    total, c_in = 0, in_channels
    for c_out in VGG16_CONV_CHANNELS:
        total += 3 * 3 * c_in * c_out + c_out
        c_in = c_out
    return total


@pytest.mark.slow
def test_vgg16_is_torchvisions_conv_layers_with_our_heads():
    from torchvision.models import vgg16

    model = make_model("vgg16", input_shape=(3, 32, 32), scenario="task")
    convs = [m for m in model.trunk.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == VGG16_CONV_CHANNELS
    reference = vgg16(weights=None).features
    assert [type(m) for m in model.trunk[0]] == [type(m) for m in reference]
    assert isinstance(model, MultiTaskModule) and isinstance(model.classifier, MultiHeadClassifier)
    # torchvision's features + one 512 -> 2 head, both counted by hand
    head = 512 * 2 + 2
    assert sum(p.numel() for p in reference.parameters()) == _vgg16_parameters_by_hand()
    assert sum(p.numel() for p in model.parameters()) == _vgg16_parameters_by_hand() + head


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["task", "class", "domain"])
def test_vgg16_features_and_classifier_contract_on_a_tiny_batch(scenario):
    torch.manual_seed(0)
    model = make_model("vgg16", input_shape=(3, 32, 32), scenario=scenario).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.features(x)
    assert features.shape == (2, 512)  # 32x32 -> 1x1 after VGG-16's 5 max-pools
    with torch.no_grad():
        if scenario == "task":
            tasks = torch.zeros(2, dtype=torch.long)
            torch.testing.assert_close(model(x, tasks), model.classifier(features, tasks))
        else:
            torch.testing.assert_close(model(x), model.classifier(features))


@pytest.mark.slow
def test_vgg16_importance_reaches_every_conv_layer():
    """The plugins' path: exact MAS importance through features() and the head."""
    from alpha_mas_avalanche.importance import mas_importance

    torch.manual_seed(0)
    # domain: one plain Linear head (Avalanche's heads mask units until adapted)
    model = make_model("vgg16", input_shape=(1, 32, 32), scenario="domain")
    importance = mas_importance(model, torch.randn(3, 1, 32, 32), exact=True)
    assert set(importance) == {n for n, _ in model.named_parameters()}
    for name, omega in importance.items():
        assert omega.shape == dict(model.named_parameters())[name].shape
        assert bool(torch.isfinite(omega).all()) and float(omega.sum()) > 0, name


def test_vgg16_is_accepted_by_configs_and_checks_its_input():
    from alpha_mas_avalanche.experiment.config import ExperimentConfig

    assert ExperimentConfig(benchmark="split_cifar10_jpeg", model="vgg16").model == "vgg16"
    with pytest.raises(ValueError, match="model"):
        ExperimentConfig(benchmark="split_cifar10_jpeg", model="vgg19")
    with pytest.raises(ValueError, match="input_shape"):
        make_model("vgg16", input_shape=(3, 28, 28))
