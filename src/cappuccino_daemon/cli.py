"""The ``cappuccino-paper`` command: one argparse tree, handlers imported lazily.

Each area of the package contributes its subcommands through ``<area>/commands.py: register(sub)``.
Those modules import nothing heavy at module level, so ``cappuccino-paper run`` (the supervisor)
never pays for torch, TA-Lib or alpaca-py.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from cappuccino_daemon import __version__
from cappuccino_daemon.errors import EX_CONFIG, EX_TEMPFAIL, ConfigError, TransientBrokerError
from cappuccino_daemon.logsetup import redact_text

Handler = Callable[[argparse.Namespace], int]

COMMAND_MODULES: tuple[str, ...] = (
    "cappuccino_daemon.init_project",  # init
    "cappuccino_daemon.supervisor.commands",  # run, install-unit
    "cappuccino_daemon.worker.commands",  # worker
    "cappuccino_daemon.replay.commands",  # replay
    "cappuccino_daemon.emulator.commands",  # emulator
    "cappuccino_daemon.model.commands",  # inspect, validate, trials, trial-metadata
    "cappuccino_daemon.demo.commands",  # demo
    "cappuccino_daemon.ops.commands",  # status, report, leaderboard
    "cappuccino_daemon.ops.resume",  # resume-model
    "cappuccino_daemon.ops.audit_cli",  # audit
    "cappuccino_daemon.soak.commands",  # soak
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cappuccino-paper",
        description="Supervised paper-trading daemon for legacy ElegantRL PPO crypto models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # an area not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except ConfigError as exc:
        # One paragraph on stderr (journald keeps it too; the supervisor logs the exit code and reason).
        print(f"cappuccino-paper {args.command}: {redact_text(str(exc))}", file=sys.stderr)
        return EX_CONFIG
    except TransientBrokerError as exc:
        # Not a config problem: the supervisor restarts us with backoff. Say it plainly, no traceback.
        print(
            f"cappuccino-paper {args.command}: the broker is not reachable ({redact_text(str(exc))}). With "
            '[broker] kind = "emulator", start it with `cappuccino-paper run` (it supervises the emulator) '
            "or `cappuccino-paper emulator` in another terminal; for alpaca-paper check the network and "
            "https://status.alpaca.markets. Exiting with 75 (temporary failure).",
            file=sys.stderr,
        )
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130
