"""Plugins under the wrappers a GPU user puts on a model: ``torch.compile``, DataParallel's
and DDP's ``module.`` names, ``torch.autocast`` around ``strategy.train``.

- A compiled model trains as the plain one, and every plugin's state equals the plain
  run's (within 1e-6 of each tensor's largest value); a state saved beside one loads
  beside the other (or beside ``nn.DataParallel``) and the next experience trains as the
  uninterrupted run; a state file with wrapper-prefixed names (as saved before the names
  were unwrapped) loads too; one whose names match no parameter raises, naming them.
- The importance pass adds no graph break and no recompilation to a compiled model.
- ``strategy.train`` inside autocast: a named warning, and the importance (Fisher) is the
  float32 one at the trained weights.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import DataLoader

from alpha_mas_avalanche import AlphaMASPlugin, IMMPlugin
from alpha_mas_avalanche.imm_merge import diagonal_fisher
from alpha_mas_avalanche.importance import mas_importance
from alpha_mas_avalanche.plugins.base import AutocastRegionWarning
import ddp_worker
from amp_helpers import PLUGINS as AMP_PLUGINS

#: the mixed-precision tests' plugins, IMM's Fisher on every sample
PLUGINS = {**AMP_PLUGINS,
           "imm": lambda: IMMPlugin(mode="mode", l2_transfer=1e-3, max_fisher_samples=None)}
WRAPPERS = {
    "plain": lambda m: m,
    "compiled": lambda m: torch.compile(m, backend="eager"),
    "data_parallel": nn.DataParallel,
}
TOLERANCE = 1e-6


def _strategy(model, plugins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=ddp_worker.LR),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=ddp_worker.BATCH,
                     train_epochs=1, device="cpu", plugins=plugins,
                     evaluator=EvaluationPlugin(loggers=[]))


def _train(strategy, experience) -> None:
    torch.manual_seed(100 + experience.current_experience)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy.train(experience, eval_streams=[], shuffle=False)


def _run(plugin_name, wrapper, state=None, params=None, upto=2):
    """Train experiences ``[start, upto)`` of the digit pairs with the model wrapped;
    ``state`` / ``params``: a saved plugin state and model parameters to start from
    (experience 1 then). Returns ``(plugin, plain model, record after each experience)``."""
    torch.manual_seed(0)
    plain = ddp_worker.Net()
    if params is not None:
        plain.load_state_dict(params)
    plugin = PLUGINS[plugin_name]()
    if state is not None:
        plugin.load_state_dict(state)
    strategy = _strategy(WRAPPERS[wrapper](plain), [plugin])
    records = []
    for experience in ddp_worker.experiences()[1 if state is not None else 0:upto]:
        _train(strategy, experience)
        records.append({**ddp_worker.plugin_state(plugin), **ddp_worker.flatten(plain, "model")})
    return plugin, plain, records


def _assert_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, reference in want.items():
        scale = max(float(reference.double().abs().max()), 1e-12) if reference.numel() else 0
        error = float((got[key].double() - reference.double()).abs().max()) \
            if reference.numel() else 0.0
        assert error <= TOLERANCE * scale, (key, error, scale)


@pytest.mark.parametrize("plugin_name", sorted(PLUGINS))
def test_compiled_model_gives_the_plain_state_and_states_move_between_wrappers(plugin_name):
    _, _, plain = _run(plugin_name, "plain")
    compiled_plugin, compiled_model, compiled = _run(plugin_name, "compiled", upto=1)
    _assert_close(compiled[0], plain[0])
    saved = torch.load(_roundtrip(compiled_plugin.state_dict()), weights_only=False)
    for target in ("plain", "data_parallel"):
        _, _, resumed = _run(plugin_name, target, state=saved,
                             params=compiled_model.state_dict())
        _assert_close(resumed[0], plain[1])


def _roundtrip(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
@pytest.mark.parametrize("plugin_name", ["alpha_mas", "si", "imm"])
def test_state_with_wrapper_prefixed_names_loads(plugin_name, prefix):
    """A state keyed by wrapped names (DDP, compile) trains the next experience as the clean one."""
    plugin, model, _ = _run(plugin_name, "plain", upto=1)
    state = plugin.state_dict()
    _, _, want = _run(plugin_name, "plain", state=state, params=model.state_dict())
    _, _, got = _run(plugin_name, "plain", state=_prefixed(state, prefix),
                     params=model.state_dict())
    _assert_close(got[0], want[0])


def _prefixed(state, prefix: str):
    """``state`` with ``prefix`` before every parameter name of its tables."""
    names = {n for n, _ in ddp_worker.Net().named_parameters()}
    if isinstance(state, dict):
        return {prefix + k if k in names else k: _prefixed(v, prefix) for k, v in state.items()}
    if isinstance(state, list):
        return [_prefixed(v, prefix) for v in state]
    if isinstance(state, set):
        return {prefix + k if k in names else k for k in state}
    return state


@pytest.mark.parametrize("plugin_name", ["alpha_mas", "si", "l2", "imm"])
def test_state_of_another_model_is_refused_by_name(plugin_name):
    plugin, _, _ = _run(plugin_name, "plain", upto=1)
    other = nn.Sequential(nn.Linear(64, 10))
    fresh = PLUGINS[plugin_name]()
    fresh.load_state_dict(plugin.state_dict())
    strategy = _strategy(other, [fresh])
    with pytest.raises(ValueError, match=r"load_state_dict: the loaded state names "
                                         r"parameter\(s\) \[.*'classifier.bias'.*Sequential"):
        _train(strategy, ddp_worker.experiences()[1])


@pytest.mark.parametrize("importance_from", ["after_training", "last_epochs"])
def test_importance_pass_adds_no_graph_break_or_recompile(importance_from):
    """Two experiences of a compiled model: dynamo's counts with AlphaMAS are Naive's."""
    from torch._dynamo.utils import counters

    counts = []
    for plugins in ([], [AlphaMASPlugin(lambda_reg=1.0, importance_from=importance_from)]):
        torch._dynamo.reset()
        counters.clear()
        torch.manual_seed(0)
        strategy = _strategy(torch.compile(ddp_worker.Net(), backend="eager"), plugins)
        for experience in ddp_worker.experiences():
            _train(strategy, experience)
        counts.append((sum(counters["graph_break"].values()), dict(counters["frames"]),
                       counters["stats"]["unique_graphs"]))
    assert counts[1] == counts[0]
    assert counts[0][0] == 0


@pytest.mark.parametrize("plugin_name", ["alpha_mas", "imm"])
def test_autocast_around_train_gives_float32_importance_and_a_named_warning(plugin_name):
    torch.manual_seed(0)
    model = ddp_worker.Net()
    plugin = PLUGINS[plugin_name]()
    strategy = _strategy(model, [plugin])
    experience = ddp_worker.experiences()[0]
    message = f"{type(plugin).__name__}: strategy.train runs inside torch.autocast"
    with pytest.warns(AutocastRegionWarning, match=message), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        strategy.train(experience, eval_streams=[], shuffle=False)
    data = experience.dataset.eval()
    x, y, _ = next(iter(DataLoader(data, batch_size=len(data), collate_fn=data.collate_fn)))
    if plugin_name == "alpha_mas":  # Omega_0 = weight * S_0 and the anchor is the model
        got = {n: w * plugin.importance_totals[0] for n, w in plugin.penalty.weight.items()}
        want = mas_importance(model, x)
    else:  # mode-IMM's Fisher (the merge of one task is the model itself)
        got = plugin.fishers[0]
        want = diagonal_fisher(model, [(x, y)])
    for name, reference in want.items():
        assert got[name].dtype == torch.float32
        error = float((got[name] - reference).abs().max())
        assert error <= TOLERANCE * float(reference.abs().max()), (name, error)
