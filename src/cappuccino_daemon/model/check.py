"""Every model of a tournament checked before anything trades: spec, weights, one forward pass.

``validate`` and the worker use the same check, so ``validate`` refuses exactly what the worker would.
All models are checked even after one fails, so a user with ten models fixes them in one round: each
problem is its own paragraph naming the model, raised together as one ConfigError (exit 78).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cappuccino_daemon.config import ModelEntry
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.actor import TorchPolicy, load_policy
from cappuccino_daemon.model.loader import load_model_spec
from cappuccino_daemon.model.spec import ModelSpec


@dataclass(frozen=True)
class CheckedModel:
    entry: ModelEntry
    spec: ModelSpec
    policy: TorchPolicy


def check_model(entry: ModelEntry) -> CheckedModel:
    """One model: its spec (with the entry's tickers, profile and capital) and a finite zero-state action."""
    tickers = list(entry.tickers) if entry.tickers else None
    spec = load_model_spec(entry.dir, tickers, profile=entry.profile, capital=entry.capital)
    policy = load_policy(entry.dir)
    action = policy.act(np.zeros(spec.state_dim, dtype=np.float32))
    if action.shape != (spec.action_dim,) or not np.all(np.isfinite(action)):
        raise ConfigError(
            f"{spec.model_dir / 'actor.pth'} produced a non-finite or mis-shaped action on a zero state "
            f"({action!r}). Fix: the weights are unusable; copy actor.pth again or retrain."
        )
    return CheckedModel(entry, spec, policy)


def check_models(entries: Sequence[ModelEntry]) -> list[CheckedModel]:
    """All models checked; any failures raised together, one paragraph per model."""
    checked: list[CheckedModel] = []
    problems: list[str] = []
    for entry in entries:
        try:
            checked.append(check_model(entry))
        except ConfigError as exc:
            problems.append(f"Model {entry.name!r} ({entry.dir}): {exc}" if len(entries) > 1 else str(exc))
    if problems:
        head = (
            f"{len(problems)} of {len(entries)} models failed their check; nothing trades until every model "
            "passes (fix them, or remove their [[models]] tables).\n\n"
            if len(entries) > 1
            else ""
        )
        raise ConfigError(head + "\n\n".join(problems))
    return checked
