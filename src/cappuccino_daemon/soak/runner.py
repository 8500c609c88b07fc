"""The chaos soak: the real daemon (supervisor, worker, embedded exchange) under kills, hangs and faults.

It runs ``cappuccino-paper run`` on a trading stub model (it buys what it lacks and sells what it holds,
so every bar sends orders) against the accelerated embedded exchange, and at seeded random moments
SIGKILLs the worker, the supervisor (restarted at once, as systemd's ``Restart=`` would) or the
exchange, SIGSTOPs the worker (a hang the supervisor must detect), while the exchange injects 5xx,
timeouts, dropped responses, orders accepted with the response lost, and 429s on a share of requests.
At the end it lets the system settle without faults, waits for a quiet moment between bars, reads the
broker's orders and positions and audits them against every journal (``soak/audit.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.soak.audit import BrokerOrder, SoakFindings, audit, read_books
from cappuccino_daemon.states import ChildState, WorkerPhase

BAR = timedelta(hours=1)
TICKERS = ("BTC", "ETH", "LTC")
KEY_HEADERS = {"APCA-API-KEY-ID": "soak", "APCA-API-SECRET-KEY": "soak"}


@dataclass(frozen=True)
class SoakPlan:
    bars: int = 40
    worker_kills: int = 12
    supervisor_kills: int = 3
    emulator_kills: int = 3
    hangs: int = 2
    fault_rate: float = 0.2
    speed: float = 1200.0  # simulated seconds per wall second (3 s per hourly bar)
    seed: int = 1
    settle_bars: int = 4
    timeout_s: float = 900.0


@dataclass
class SoakResult:
    plan: SoakPlan
    workdir: Path
    wall_s: float = 0.0
    kills: dict[str, int] = field(default_factory=dict)
    findings: SoakFindings = field(default_factory=SoakFindings)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.__dict__,
            "workdir": str(self.workdir),
            "wall_s": round(self.wall_s, 1),
            "kills": self.kills,
            "findings": self.findings.to_json(),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_setup(workdir: Path, plan: SoakPlan, port: int) -> Path:
    """The model folder and the daemon config the soak runs on; returns the config path."""
    from cappuccino_daemon.model.testing import write_trading_stub

    model = write_trading_stub(workdir / "model" / "trial_1_1h", TICKERS)
    config = workdir / "daemon.toml"
    config.write_text(
        f'[model]\ndir = "{model}"\n'
        "[worker]\npoll_interval_s = 0.5\nhistory_hours = 300\nbar_close_grace_s = 0.0\n"
        "http_timeout_s = 2.0\nfill_timeout_s = 10.0\n"
        '[broker]\nkind = "emulator"\n'
        f"[emulator]\nspeed = {plan.speed}\nsynthetic_seed = {plan.seed}\nport = {port}\n"
        "[supervisor]\nbackoff_base_s = 0.2\nbackoff_max_s = 1.0\nhealthy_after_s = 2.0\n"
        "heartbeat_timeout_s = 30.0\nstop_timeout_s = 3.0\n"
        f'[paths]\nstate = "{workdir / "state"}"\nlogs = "{workdir / "logs"}"\n'
        '[logging]\njson = true\nlevel = "INFO"\n',
        encoding="utf-8",
    )
    return config


def fault_rules(rate: float) -> list[str]:
    """The fault mix, ``rate`` of trading requests in all: 5xx, timeouts, drops, lost responses, 429."""
    share = rate / 5
    return [
        f"trading:503:{share}",
        f"trading:hang=3:{share}",
        f"trading:drop:{share}",
        f"orders_submit:ambiguous:{share}",
        f"trading:429:{share}",
    ]


class Daemon:
    """The supervisor process and what the soak needs to see of it."""

    def __init__(self, config: Path, workdir: Path, port: int) -> None:
        self.config = config
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPPUCCINO_", "NOTIFY_"))}

    def start(self) -> None:
        log = (self.workdir / "supervisor.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cappuccino_daemon", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=self.env,
        )

    def child_pid(self, name: str) -> int | None:
        try:
            state = json.loads(StateLayout(self.workdir / "state").supervisor_state.read_text())
        except (OSError, ValueError):
            return None
        child = state.get("children", {}).get(name, {})
        if child.get("state") != ChildState.RUNNING or not child.get("pid"):
            return None
        return int(child["pid"])

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers=KEY_HEADERS)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def send(self, method: str, path: str, body: Any) -> None:
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=KEY_HEADERS)
        urllib.request.urlopen(request, timeout=5).close()

    def exchange_state(self) -> dict[str, Any] | None:
        try:
            return dict(self.get("/admin/state"))
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


LATE_BLOWS_BARS = 10


def _schedule(plan: SoakPlan, rng: random.Random) -> list[tuple[float, str]]:
    """(bar position, action) pairs: every kill at a seeded random moment of a random bar."""
    actions = (
        ["worker"] * plan.worker_kills
        + ["supervisor"] * plan.supervisor_kills
        + ["emulator"] * plan.emulator_kills
        + ["hang"] * plan.hangs
    )
    return sorted((rng.uniform(1.0, max(1.5, plan.bars - 1.0)), a) for a in actions)


def run_soak(plan: SoakPlan, workdir: Path, say: Callable[[str], None] = print) -> SoakResult:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    daemon = Daemon(write_setup(workdir, plan, port), workdir, port)
    result = SoakResult(plan, workdir, kills=dict.fromkeys(("worker", "supervisor", "emulator", "hang"), 0))
    rng = random.Random(plan.seed)
    started = time.monotonic()
    daemon.start()
    try:
        origin = _wait_for_exchange(daemon, started, plan)
        chaos_end = _chaos(daemon, plan, rng, origin, result, started, say)
        _settle(daemon, plan, chaos_end, started)
        orders, positions = _quiet_read(daemon, plan, started)
    finally:
        daemon.stop()
    result.wall_s = time.monotonic() - started
    journals = [read_books(p) for p in StateLayout(workdir / "state").journals()]
    result.findings = audit(orders, positions, journals, BAR)
    return result


class SoakAborted(Exception):
    """The soak could not finish: the daemon stopped on its own, or the time ran out."""


def _deadline_check(daemon: Daemon, started: float, plan: SoakPlan, what: str) -> None:
    """Fail fast when the supervisor exits by itself (systemd would not restart a 78; we never
    SIGTERM it during the chaos) rather than wait for the timeout."""
    code = None if daemon.proc is None else daemon.proc.poll()
    if code is not None:
        raise SoakAborted(
            f"soak: the supervisor exited {code} on its own while waiting for {what}; its last words "
            f"are at the end of {daemon.workdir / 'supervisor.log'}"
        )
    if time.monotonic() - started > plan.timeout_s:
        raise SoakAborted(f"soak: {what} did not happen within {plan.timeout_s:g} s")


def _now(state: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(state["now"]))


def _wait_for_exchange(daemon: Daemon, started: float, plan: SoakPlan) -> datetime:
    while (state := daemon.exchange_state()) is None:
        _deadline_check(daemon, started, plan, "the embedded exchange's start")
        time.sleep(0.2)
    daemon.send("POST", "/admin/faults", {"faults": fault_rules(plan.fault_rate), "mode": "replace"})
    return _now(state).replace(minute=0, second=0, microsecond=0)


def _chaos(
    daemon: Daemon,
    plan: SoakPlan,
    rng: random.Random,
    origin: datetime,
    result: SoakResult,
    started: float,
    say: Callable[[str], None],
) -> datetime:
    """Deliver every scheduled blow; returns the broker time the chaos ended (``bars`` after the start, or
    a little later when the last blows had to wait for their target)."""
    pending = _schedule(plan, rng)
    end = origin + BAR * plan.bars
    while True:
        _deadline_check(daemon, started, plan, f"{plan.bars} bars")
        state = daemon.exchange_state()
        if state is None:
            time.sleep(0.1)
            continue
        if not state.get("faults"):  # a restarted exchange forgets run-time faults: give them back
            daemon.send("POST", "/admin/faults", {"faults": fault_rules(plan.fault_rate), "mode": "replace"})
        now = _now(state)
        if now >= end and (not pending or now >= end + BAR * LATE_BLOWS_BARS):
            return now  # a blow still waiting for its target (restarting at the end) gets a few more bars
        # A blow whose target is not running right now (restarting, in backoff) waits for it.
        while pending and origin + BAR * pending[0][0] <= now and _act(daemon, pending[0][1]):
            _, action = pending.pop(0)
            result.kills[action] += 1
            say(f"{now.isoformat()} {action}")
        time.sleep(0.05)


def _act(daemon: Daemon, action: str) -> bool:
    """One blow; False when its target is not running right now (the blow is not counted)."""
    if action == "supervisor":
        assert daemon.proc is not None
        daemon.proc.kill()
        daemon.proc.wait()
        daemon.start()  # as systemd would
        return True
    pid = daemon.child_pid("emulator" if action == "emulator" else "worker")
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGSTOP if action == "hang" else signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _settle(daemon: Daemon, plan: SoakPlan, chaos_end: datetime, started: float) -> None:
    """No more faults; let a few bars pass so the worker reconciles what the chaos left open."""
    daemon.send("DELETE", "/admin/faults", {})
    end = chaos_end + BAR * plan.settle_bars
    while (state := daemon.exchange_state()) is None or _now(state) < end:
        _deadline_check(daemon, started, plan, "settling")
        time.sleep(0.1)


def _quiet_read(
    daemon: Daemon, plan: SoakPlan, started: float
) -> tuple[list[BrokerOrder], dict[str, Decimal]]:
    """The broker's orders and positions at a moment when the worker has finished the newest bar."""
    heartbeat = StateLayout(daemon.workdir / "state").heartbeat
    while True:
        _deadline_check(daemon, started, plan, "a quiet moment after the newest bar")
        state = daemon.exchange_state()
        try:
            beat = json.loads(heartbeat.read_text())
        except (OSError, ValueError):
            beat = {}
        if state is not None and beat.get("last_bar") and beat.get("phase") == WorkerPhase.WAITING:
            newest_open = _now(state).replace(minute=0, second=0, microsecond=0) - BAR
            if datetime.fromisoformat(beat["last_bar"]) >= newest_open:
                orders = _all_orders(daemon)
                positions = {
                    str(p["symbol"]).removesuffix("USD").split("/")[0]: Decimal(str(p["qty"]))
                    for p in daemon.get("/v2/positions")
                }
                return orders, positions
        time.sleep(0.05)


def _all_orders(daemon: Daemon) -> list[BrokerOrder]:
    seen: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        query = "/v2/orders?status=all&limit=500&direction=asc" + (f"&after={after}" if after else "")
        page = daemon.get(query)
        fresh = [o for o in page if o["id"] not in seen]
        if not fresh:
            return [BrokerOrder.from_json(o) for o in seen.values()]
        for order in fresh:
            seen[order["id"]] = order
        last = datetime.fromisoformat(str(page[-1]["submitted_at"]).replace("Z", "+00:00"))
        after = (last - timedelta(milliseconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
