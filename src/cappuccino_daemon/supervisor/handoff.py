"""Carrying the supervisor's plan across ``exec``, so the long-running process stays small.

``run`` loads the settings (pydantic) and builds the plan, then replaces itself with the lean supervisor
(``supervisor/main.py``): same pid, so systemd's main process and ``NotifyAccess=main`` are unchanged,
but the process that lives for months never imported pydantic. The plan travels as JSON in an
inherited memfd (no size limit, nothing on disk).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.runtime import AlertPlan, ChildPlan, SupervisorConfig

LEAN_MODULE = "cappuccino_daemon.supervisor.main"
PLAN_FD_FLAG = "--plan-fd"


@dataclass(frozen=True)
class LogPlan:
    """How the lean process configures its logging (the same as ``run`` would have)."""

    level: str = "INFO"
    json: bool | None = None
    file: str | None = None


def encode(config: SupervisorConfig, log: LogPlan) -> bytes:
    plan = asdict(config)
    plan["policy"] = asdict(config.policy)
    return json.dumps({"config": plan, "log": asdict(log)}, default=str).encode("utf-8")


def _plan_from(raw: dict[str, Any] | None) -> ChildPlan | None:
    if raw is None:
        return None
    paths = {k: Path(raw[k]) if raw[k] is not None else None for k in ("heartbeat_file", "ready_file")}
    return ChildPlan(
        name=raw["name"],
        argv=list(raw["argv"]),
        ready_timeout_s=float(raw["ready_timeout_s"]),
        env=dict(raw["env"]),
        **paths,
    )


def decode(data: bytes) -> tuple[SupervisorConfig, LogPlan]:
    raw = json.loads(data)
    cfg = raw["config"]
    worker = _plan_from(cfg["worker"])
    assert worker is not None
    config = SupervisorConfig(
        state_dir=Path(cfg["state_dir"]),
        worker=worker,
        emulator=_plan_from(cfg["emulator"]),
        validate_argv=cfg["validate_argv"],
        validate_timeout_s=float(cfg["validate_timeout_s"]),
        policy=BackoffPolicy(**cfg["policy"]),
        heartbeat_timeout_s=float(cfg["heartbeat_timeout_s"]),
        stop_timeout_s=float(cfg["stop_timeout_s"]),
        tick_s=float(cfg["tick_s"]),
        config_file=Path(cfg["config_file"]) if cfg.get("config_file") else None,
        alerts=AlertPlan(**cfg.get("alerts", {})),
    )
    return config, LogPlan(**raw["log"])


def exec_lean(config: SupervisorConfig, log: LogPlan) -> NoReturn:
    """Replace this process with the lean supervisor running ``config`` (never returns)."""
    fd = os.memfd_create("cappuccino-supervisor-plan", 0)  # not CLOEXEC: the new image reads it
    os.write(fd, encode(config, log))
    os.lseek(fd, 0, os.SEEK_SET)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", LEAN_MODULE, PLAN_FD_FLAG, str(fd)])


def read_plan(fd: int) -> tuple[SupervisorConfig, LogPlan]:
    with os.fdopen(fd, "rb") as fh:
        return decode(fh.read())
