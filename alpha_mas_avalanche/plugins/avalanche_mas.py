"""Avalanche's ``MASPlugin`` with its loss check fixed, as the harness's "MAS (Avalanche)"."""
from __future__ import annotations

import torch
from avalanche.training.plugins import MASPlugin


class AvalancheMASPlugin(MASPlugin, supports_distributed=True):
    """Avalanche 0.6's ``MASPlugin`` (Aljundi et al., "Memory Aware Synapses", ECCV 2018:
    EMA of batch-approximated importances, one anchor), unchanged but for one line.

    Avalanche's ``before_backward`` refuses a mini-batch whose loss is exactly 0 (``if not
    strategy.loss: raise ValueError("Loss is not available")``, a truth test of a tensor),
    which a model that fits its batch to float precision reaches (pairs scaled by 10 in
    ``split_mnist_scaled``). Here only a missing loss is refused; the penalty is summed in the
    same order as Avalanche's, so the updates are the same whenever Avalanche's plugin runs.

    Under DDP its importance pass runs through the DDP model on every rank, one backward
    per batch of the rank's experience (DDP averages each batch's gradient over the ranks):
    the ranks keep equal state, and every rank must hold as many batches as the others.
    """

    def before_backward(self, strategy, **kwargs) -> None:
        if strategy.clock.train_exp_counter == 0:
            return
        if not self.importance:
            raise ValueError("Importance is not available")
        if not self.params:
            raise ValueError("Parameters are not available")
        if strategy.loss is None:
            raise ValueError("Loss is not available")
        penalty: torch.Tensor | float = 0.0
        for name, param in strategy.model.named_parameters():
            if name in self.importance.keys():
                penalty += torch.sum(self.importance[name].expand(param.shape)
                                     * (param - self.params[name].expand(param.shape)).pow(2))
        strategy.loss += self._lambda * penalty
