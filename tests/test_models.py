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
