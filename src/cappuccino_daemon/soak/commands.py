"""``cappuccino-paper soak``: the chaos soak as a command (imports nothing heavy until it runs)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "soak",
        help="chaos soak: run the daemon under kills, hangs and faults, then audit broker vs journals",
        description="Runs the real supervisor, worker and embedded exchange on a trading stub model at "
        "high speed, kills things at seeded random moments, injects faults, then compares the broker's "
        "orders and positions with every journal. Exit 0 when the audit finds nothing, 1 otherwise.",
    )
    p.add_argument("--bars", type=int, default=40, help="accelerated bars under chaos (default 40)")
    p.add_argument("--worker-kills", type=int, default=12)
    p.add_argument("--supervisor-kills", type=int, default=3)
    p.add_argument("--emulator-kills", type=int, default=3)
    p.add_argument("--hangs", type=int, default=2, help="SIGSTOPs of the worker")
    p.add_argument("--fault-rate", type=float, default=0.2, help="share of trading requests faulted")
    p.add_argument("--speed", type=float, default=1200.0, help="simulated seconds per wall second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900.0, help="give up after this many wall seconds")
    p.add_argument("--dir", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cappuccino_daemon.soak.runner import SoakAborted, SoakPlan, run_soak

    plan = SoakPlan(
        bars=args.bars,
        worker_kills=args.worker_kills,
        supervisor_kills=args.supervisor_kills,
        emulator_kills=args.emulator_kills,
        hangs=args.hangs,
        fault_rate=args.fault_rate,
        speed=args.speed,
        seed=args.seed,
        timeout_s=args.timeout,
    )
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="cappuccino-soak-"))
    try:
        result = run_soak(plan, workdir, say=lambda line: print(line, file=sys.stderr))
    except SoakAborted as exc:
        print(f"{exc} (work folder kept: {workdir})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_summary(result.to_json())
    return 0 if result.findings.problems == 0 else 1


def _print_summary(data: dict[str, Any]) -> None:
    found = data["findings"]
    print(f"soak: {data['wall_s']} s, work folder {data['workdir']}")
    print("kills: " + ", ".join(f"{k} {v}" for k, v in data["kills"].items()))
    print(
        f"orders {found['orders']}, fills {found['fills']}, bars decided {found['bars_decided']}, "
        f"skipped with a reason {found['bars_skipped']}"
    )
    for key in ("duplicates", "lost", "unbooked", "unjournaled", "book_drift", "unexplained_bars"):
        print(f"{key}: {len(found[key])}")
        for line in found[key][:10]:
            print(f"  {line}")
