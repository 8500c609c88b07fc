"""Actor and critic with EXACTLY the legacy ElegantRL ``ActorPPO`` / ``CriticPPO`` state_dict layout.

Keys: ``net.0`` Linear(state, mid), ReLU, ``net.2`` Linear(mid, mid), ReLU, ``net.4`` Linear(mid, out),
plus ``a_std_log`` (1, action_dim) on the actor. ``torch.save(actor.state_dict(), "actor.pth")`` then
gives a file the model layer's loader (and upstream ``ActorPPO``) loads with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _mlp(in_dim: int, mid_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, mid_dim),
        nn.ReLU(),
        nn.Linear(mid_dim, mid_dim),
        nn.ReLU(),
        nn.Linear(mid_dim, out_dim),
    )


class ActorPPO(nn.Module):
    """Gaussian policy on pre-tanh actions; ``forward`` is the deterministic action the daemon serves."""

    def __init__(self, mid_dim: int, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.net = _mlp(state_dim, mid_dim, action_dim)
        self.a_std_log = nn.Parameter(torch.zeros((1, action_dim)) - 0.5, requires_grad=True)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).tanh()

    def logprob_entropy(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of given pre-tanh actions under the current policy, and the policy entropy."""
        mean = self.net(state)
        std_log = self.a_std_log.expand_as(mean)
        z = (action - mean) / std_log.exp()
        logprob = -(std_log + LOG_SQRT_2PI + 0.5 * z.pow(2)).sum(dim=-1)
        entropy = (std_log + LOG_SQRT_2PI + 0.5).sum(dim=-1)
        return logprob, entropy


class CriticPPO(nn.Module):
    """State-value baseline, same layout with a (1, mid) output layer."""

    def __init__(self, mid_dim: int, state_dim: int) -> None:
        super().__init__()
        self.net = _mlp(state_dim, mid_dim, 1)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)
