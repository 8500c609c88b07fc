"""``cappuccino-paper audit``: where the live books left the training env's, per model, in dollars."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="live versus the training env after the same decisions, the gap split by cause",
        description="Per model, from its journal: live equity against the training env's after the same "
        "decisions from the same books, and the gap split into risk limits, orders dropped or resized, "
        "partial or unfilled orders, fill price, fees kept in coin and what is left (README: The "
        "live-versus-simulation audit). Reads the config and the journals only.",
    )
    p.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml)")
    p.add_argument("--model", help="one model of a [[models]] tournament (default: every model)")
    p.add_argument("--state-dir", type=Path, help="state directory (default: the config's paths.state)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON, with every bar")
    p.add_argument("--out", type=Path, help="also draw the cumulative gap and its parts into this PNG")
    p.set_defaults(handler=_run_audit)


def audit_rows(settings: Any, state: Path, name: str | None) -> list[dict[str, Any]]:
    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.ops.audit import Fees, audit_journal
    from cappuccino_daemon.ops.journal_view import read_journal
    from cappuccino_daemon.ops.leaderboard import HOURS_PER_YEAR, model_facts
    from cappuccino_daemon.ops.status import find_journal

    entries = list(settings.models_list)
    if name is not None:
        entries = [e for e in entries if e.name.casefold() == name.casefold()]
        if not entries:
            names = ", ".join(e.name for e in settings.models_list)
            raise ConfigError(f"{settings.source_file}: no model named {name!r}; the models are {names}.")
    rows = []
    for entry in entries:
        row: dict[str, Any] = {"name": entry.name, "dir": str(entry.dir)}
        missing = "no journal of this model yet (the worker writes it on its first bar)"
        path, note = find_journal(state, Path(entry.dir))
        if path is None or note != "journal of the configured model":
            rows.append(row | {"problem": missing})
            continue
        try:
            facts = model_facts(entry)  # the fee rates the env and the live books charge
        except ConfigError as exc:
            rows.append(row | {"problem": f"model folder unreadable, so its fee rates are unknown: {exc}"})
            continue
        fees = Fees(facts.buy_cost_pct, facts.sell_cost_pct)
        step = timedelta(seconds=round(HOURS_PER_YEAR * 3600 / facts.bars_per_year))
        rows.append(row | audit_journal(path, read_journal(path), fees, facts.profile, step))
    return rows


def _run_audit(args: argparse.Namespace) -> int:
    from cappuccino_daemon.config import DEFAULT_CONFIG, load_settings
    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.ops.audit import COMPONENTS, dumps

    configure_logging(level="ERROR")
    settings = load_settings(args.config or DEFAULT_CONFIG, require_model_dir=False)
    rows = audit_rows(settings, Path(args.state_dir or settings.paths.state), args.model)
    if args.out is not None:
        from cappuccino_daemon.ops.audit_plot import render_audit

        render_audit(rows, args.out)
    if args.json:
        print(dumps(rows))
        return 0
    for r in rows:
        if r.get("problem"):
            print(f"{r['name']}: {r['problem']}")
            continue
        print(
            f"{r['name']}: live {r['live_equity']:,.2f} USD, env after the same decisions "
            f"{r['env_equity']:,.2f}, gap {r['gap_usd']:+,.2f} over {r['bars_decided']} bars "
            f"({r['bars_skipped']} skipped: {r['bars_skipped_valued']} valued, "
            f"{r['bars_skipped_unvalued']} without their data)"
        )
        for name in COMPONENTS:
            print(f"  {name.replace('_', ' '):<22} {r['components'][name]:+12,.4f}")
    if args.out is not None:
        print(f"audit: {len(rows)} models -> {args.out}")
    return 0
