"""The ``inspect`` report: what a trial folder holds, from the shapes outward, plus how to run it.

Fixes the old ``model_inspector.py``: lookback is derived with the correct state formula
``1 + n + n*11*L`` (the old one assumed prices in the state and reported "failed" for 239), and the
generated command pins the tickers and lookback instead of silently defaulting them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cappuccino_daemon.model.checkpoint import read_checkpoint
from cappuccino_daemon.model.loader import load_model_spec
from cappuccino_daemon.model.spec import ModelSpec


def inspect_model(model_dir: Path, tickers: Sequence[str] | None = None) -> tuple[ModelSpec, dict[str, Any]]:
    """(spec, JSON-able report). Raises ConfigError like the worker would, except for unknown tickers.

    ``inspect`` is the first diagnostic a user runs, so a legacy model whose tickers nobody recorded is
    still described (``"tickers": null``, ``n_tickers`` from the action dim) with a warning that gives
    the exact command pinning them; worker, validate and replay keep refusing it.
    """
    spec = load_model_spec(Path(model_dir), tickers, allow_unknown_tickers=True)
    n = spec.action_dim
    info = read_checkpoint(Path(model_dir))
    report: dict[str, Any] = {
        "model_dir": str(spec.model_dir),
        "model_id": spec.model_id,
        "algorithm": spec.algorithm,
        "net_dim": spec.net_dim,
        "state_dim": spec.state_dim,
        "action_dim": spec.action_dim,
        "n_hidden_layers": spec.n_hidden_layers,
        "n_parameters": info.n_parameters,
        "n_tickers": n,
        "tickers": list(spec.tickers) if spec.tickers_known else None,
        "lookback": spec.lookback,
        "n_features": len(spec.features),
        "features": list(spec.features),
        "state_layout": f"1 cash + {n} holdings + {n} x {len(spec.features)} x "
        f"{spec.lookback} = {spec.state_dim}",
        "timeframe": spec.timeframe,
        "norms": {
            "cash": spec.norms.cash,
            "stocks": spec.norms.stocks,
            "tech": spec.norms.tech,
            "reward": spec.norms.reward,
            "action": spec.norms.action,
        },
        "action_normaliser": spec.action_normaliser,
        "env_profile": {**spec.profile.__dict__, "minimum_qty": list(spec.profile.minimum_qty)},
        "params_source": spec.source.origin,
        "source": {
            "study": spec.source.study,
            "number": spec.source.number,
            "trial_id": spec.source.trial_id,
        },
        "actor_sha256": spec.actor_sha256,
        "warnings": list(spec.warnings),
    }
    return spec, report


def worker_command(spec: ModelSpec) -> str | None:
    """The worker command, or None while the tickers are unknown (the worker would refuse)."""
    if not spec.tickers_known:
        return None
    return (
        f"cappuccino-paper worker --model-dir {shlex.quote(str(spec.model_dir.resolve()))} "
        f"--tickers {','.join(spec.tickers)}"
    )


def toml_snippet(spec: ModelSpec) -> str | None:
    if not spec.tickers_known:
        return None
    tickers = ", ".join(f'"{t}"' for t in spec.tickers)
    return f'[model]\ndir = "{spec.model_dir.resolve()}"\ntickers = [{tickers}]\n'


def _tickers_line(report: dict[str, Any]) -> str:
    if report["tickers"] is None:
        return f"Tickers      UNKNOWN ({report['n_tickers']} positions; see the warning to pin them)"
    return f"Tickers      {', '.join(report['tickers'])}  (state order)"


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text for a terminal."""
    n = report["norms"]
    prof = report["env_profile"]
    src = report["source"]
    lines = [
        f"Model        {report['model_dir']}  ({report['model_id']})",
        f"Algorithm    {report['algorithm'].upper()} actor, Linear-ReLU-Linear-ReLU-Linear, tanh output",
        f"Architecture net_dim {report['net_dim']}, state_dim {report['state_dim']}, action_dim "
        f"{report['action_dim']}, {report['n_hidden_layers']} hidden layers, "
        f"{report['n_parameters']:,} params",
        f"State        {report['state_layout']}",
        _tickers_line(report),
        f"Lookback     {report['lookback']} bars of {report['timeframe']}",
        f"Features     {', '.join(report['features'])}",
        f"Norms        cash {n['cash']:g}, stocks {n['stocks']:g}, tech {n['tech']:g}, "
        f"reward {n['reward']:g}, action {n['action']:g} ({report['action_normaliser']})",
        f"Env profile  {prof['name']}: capital {prof['initial_capital']:g}, fees {prof['buy_cost_pct']:g}/"
        f"{prof['sell_cost_pct']:g}, safety {prof['safety_factor']:g}, "
        f"cash reserve {prof['min_cash_reserve']:g}",
        f"Params from  {report['params_source']} (study {src['study']}, number {src['number']}, "
        f"trial_id {src['trial_id']})",
        f"actor.pth    sha256 {report['actor_sha256']}",
    ]
    if report["warnings"]:
        lines.append("Warnings:")
        lines += [f"  - {w}" for w in report["warnings"]]
    else:
        lines.append("Warnings     none")
    return "\n".join(lines)
