"""The deterministic legacy ActorPPO: ``a = tanh(net(s))`` with net = Linear-ReLU-Linear-ReLU-Linear.

Built from the tensor shapes of ``actor.pth`` and loaded strictly, so a checkpoint that does not fit
exactly is refused instead of half-loaded. ``act`` feeds one state at a time, as the upstream backtest
loop did (batched BLAS results differ in the last float32 bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.checkpoint import CheckpointInfo, read_checkpoint


class _ActorNet(nn.Module):
    """Same parameter names as the legacy ActorPPO, so ``load_state_dict(strict=True)`` applies."""

    def __init__(self, state_dim: int, net_dim: int, action_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_dim, net_dim),
            nn.ReLU(),
            nn.Linear(net_dim, net_dim),
            nn.ReLU(),
            nn.Linear(net_dim, action_dim),
        )
        # Exploration noise scale; unused by the deterministic action but part of the state_dict.
        self.a_std_log = nn.Parameter(torch.zeros((1, action_dim)) - 0.5)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(state))


class TorchPolicy:
    """Implements ``spec.Policy``: float32 state (state_dim,) -> float32 action in [-1, 1] (action_dim,)."""

    def __init__(self, info: CheckpointInfo) -> None:
        self.info = info
        self.state_dim = info.state_dim
        self.action_dim = info.action_dim
        self.net_dim = info.net_dim
        self._module = _ActorNet(info.state_dim, info.net_dim, info.action_dim)
        try:
            self._module.load_state_dict(info.state_dict, strict=True)
        except RuntimeError as exc:  # defensive: describe_state_dict already checked every shape
            raise ConfigError(
                f"{info.path} does not load into a legacy ActorPPO({info.net_dim}, {info.state_dim}, "
                f"{info.action_dim}): {str(exc)[:200]}. Fix: use an unmodified actor.pth."
            ) from None
        self._module.eval()
        for p in self._module.parameters():
            p.requires_grad_(False)
        # The same three linear layers called directly: the module's own kernels and summation order
        # (bit-identical output, tested) without nn.Module's per-call dispatch, about 0.1 ms a forward
        # (12 % of the 1984-wide actor's forward; replay makes 5,446 of them).
        linears = [m for m in self._module.net if isinstance(m, nn.Linear)]
        self._layers = [(m.weight, m.bias) for m in linears]

    def _check(self, states: npt.NDArray[np.float32], batch: bool) -> torch.Tensor:
        arr = np.asarray(states)
        want = f"(N, {self.state_dim})" if batch else f"({self.state_dim},)"
        ok = arr.ndim == (2 if batch else 1) and arr.shape[-1] == self.state_dim
        if not ok:
            raise ValueError(f"state shape {arr.shape} does not match the model's {want}")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Deterministic action for one state, computed as a batch of one (upstream ``unsqueeze(0)``)."""
        tensor = self._check(state, batch=False)
        (w1, b1), (w2, b2), (w3, b3) = self._layers
        with torch.inference_mode():  # no autograd bookkeeping at all (no_grad still bumps versions)
            hidden = torch.relu(F.linear(tensor.unsqueeze(0), w1, b1))
            hidden = torch.relu(F.linear(hidden, w2, b2))
            out = torch.tanh(F.linear(hidden, w3, b3))
        return np.asarray(out.numpy()[0], dtype=np.float32)

    def act_batch(self, states: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Actions for many states in one call (tests and offline analysis only)."""
        tensor = self._check(states, batch=True)
        with torch.no_grad():
            out = self._module(tensor)
        return np.asarray(out.numpy(), dtype=np.float32)

    def pre_tanh(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``net(s)`` before the tanh, for diagnosing saturated actions."""
        tensor = self._check(state, batch=False)
        with torch.no_grad():
            out = self._module.net(tensor.unsqueeze(0))
        return np.asarray(out.numpy()[0], dtype=np.float32)


def load_policy(model_dir: Path) -> TorchPolicy:
    """Read ``model_dir/actor.pth`` (weights only) and build the deterministic actor from it."""
    return TorchPolicy(read_checkpoint(Path(model_dir)))
