"""L2 to the previous task's parameters: the anchor penalty with unit importance."""
from __future__ import annotations

import torch

from alpha_mas_avalanche.penalty import ConsolidatedPenalty
from alpha_mas_avalanche.plugins.quadratic import QuadraticPenaltyPlugin


class L2Plugin(QuadraticPenaltyPlugin):
    """``lambda * sum_ij (theta_ij - theta*_ij)^2`` around the parameters at the end of the
    last experience: the importance-free control of the quadratic regularisers (MAS, EWC,
    SI) with ``Omega = 1``, as the L2 baseline of Kirkpatrick et al. (2017, PNAS) and of
    Hsu, Liu, Ramasamy & Kira, "Re-evaluating Continual Learning Scenarios" (2018), whose
    code keeps one anchor, the latest. Parameters first seen later carry no penalty.
    Training that diverged raises
    :class:`~alpha_mas_avalanche.plugins.quadratic.TrainingDivergedError`.

    Args:
        lambda_reg: ``lambda`` > 0.
    """

    def __init__(self, lambda_reg: float = 1.0) -> None:
        super().__init__(ConsolidatedPenalty(lambda_reg, alpha_scaling=False))

    @property
    def lambda_reg(self) -> float:
        """``lambda``, the penalty's strength."""
        return self.penalty.lambda_reg

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.check_divergence(strategy)
        params = self.params(strategy)
        anchor = {n: p.detach() for n, p in params.items()}
        penalty = ConsolidatedPenalty(self.lambda_reg, alpha_scaling=False)
        try:
            penalty.add_task({n: torch.ones_like(p) for n, p in anchor.items()}, anchor)
        except ValueError as err:
            raise ValueError(f"L2Plugin, experience {strategy.experience.current_experience}: "
                             f"{err}") from err
        self.penalty = penalty
        super().after_training_exp(strategy, **kwargs)
