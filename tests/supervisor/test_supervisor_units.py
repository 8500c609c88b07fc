"""Pure parts: backoff arithmetic, state file, lock, sd_notify on a real socket, child env, units."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.child import ExitInfo, clean_env
from cappuccino_daemon.supervisor.handoff import LogPlan, decode, encode
from cappuccino_daemon.supervisor.lock import InstanceLock
from cappuccino_daemon.supervisor.notify import Notifier, sd_notify, socket_address, watchdog_interval_s
from cappuccino_daemon.supervisor.resume import resume_backoff
from cappuccino_daemon.supervisor.runtime import ChildPlan, ChildRuntime
from cappuccino_daemon.supervisor.state_store import ChildRecord, StateStore, SupervisorState
from cappuccino_daemon.supervisor.units import TEMPLATE_NAME, UNIT_NAME, UnitParams, default_units, render

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def test_backoff_doubles_from_base_and_caps() -> None:
    policy = BackoffPolicy()  # the documented defaults: 5 s doubling to 300 s
    assert policy.schedule(8) == [5, 10, 20, 40, 80, 160, 300, 300]
    assert policy.delay(0) == 0.0
    assert policy.delay(10_000) == 300.0  # no float overflow on a very long streak


def test_backoff_is_monotonic_and_bounded_for_any_settings() -> None:
    for base, cap in [(0.2, 0.8), (1.0, 1.0), (5.0, 300.0), (0.01, 1000.0)]:
        policy = BackoffPolicy(base, cap, 1.0)
        delays = policy.schedule(40)
        assert delays[0] == base
        assert all(a <= b for a, b in itertools.pairwise(delays))
        assert max(delays) == cap


def test_backoff_healthy_threshold() -> None:
    policy = BackoffPolicy(healthy_after_s=60)
    assert not policy.is_healthy_run(None)
    assert not policy.is_healthy_run(59.9)
    assert policy.is_healthy_run(60.0)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        BackoffPolicy(base_s=10, max_s=5)


def test_state_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    state = SupervisorState(status="running")
    rec = state.child("worker")
    rec.restarts, rec.consecutive_failures, rec.backoff_s = 4, 2, 10.0
    rec.next_start_at = NOW.isoformat()
    store.save(state, NOW)
    again = store.load(NOW)
    assert again.children["worker"].restarts == 4
    assert again.children["worker"].backoff_s == 10.0
    assert again.updated_at == NOW.isoformat()


@pytest.mark.parametrize(
    "content",
    [
        "",  # zero-length (power cut before the first write)
        '{"version": 1, "children": {"worker": {"name": "worker", "restarts": 3',  # truncated
        "\x00\x00garbage",
        '{"version": 99}',  # unknown schema
        '{"version": 1, "children": {"worker": {"name": "worker", "restarts": "many"}}}',  # wrong type
        # Valid JSON with wrong types used to crash the loop (pid into os.kill, naive datetime math):
        '{"version": 1, "children": {"worker": {"name": "worker", "pid": "12x"}}}',
        '{"version": 1, "children": {"worker": {"name": "worker", "pid": -1}}}',
        '{"version": 1, "children": {"worker": {"name": "worker", "state": 3}}}',
        '{"version": 1, "children": {"worker": {"name": "worker", "consecutive_failures": 2, "backoff_s": 5,'
        ' "next_start_at": "2026-01-01T00:00:00"}}}',
        '{"version": 1, "supervisor_pid": "me", "children": {}}',
        "[1, 2, 3]",
    ],
)
def test_corrupt_state_is_moved_aside_and_rebuilt(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(content)
    state = store.load(NOW)
    assert state.children == {}
    aside = list(tmp_path.glob("supervisor.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == content
    assert not store.path.exists()
    store.save(state, NOW)
    assert json.loads(store.path.read_text())["version"] == 1


def test_unusable_state_paths_are_one_paragraph_config_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="must be writable"):
        InstanceLock(blocker / "state").acquire()
    (tmp_path / "supervisor.json").mkdir()  # e.g. a botched volume mount
    with pytest.raises(ConfigError, match="Cannot read the supervisor state file"):
        StateStore(tmp_path).load(NOW)


def test_lock_refuses_a_second_holder_in_another_process(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path;"
        "from cappuccino_daemon.supervisor.lock import InstanceLock;"
        "lock = InstanceLock(Path(sys.argv[1])); lock.acquire(); print('locked', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}.*systemctl stop"):
            InstanceLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with InstanceLock(tmp_path) as lock:  # the kernel released it with the process
        assert lock.path.read_text().strip() == str(os.getpid())


def _bound_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def _received(sock: socket.socket) -> list[str]:
    """Every datagram sent so far (the sender is done: the first 0.3 s of silence ends the read)."""
    sock.settimeout(0.3)
    got: list[str] = []
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except TimeoutError:
        return got


def test_sd_notify_filesystem_and_abstract_sockets(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _bound_socket(path) as sock:
        assert sd_notify("READY=1\nSTATUS=hello", {"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1\nSTATUS=hello"
    name = f"cappuccino-test-{os.getpid()}"
    with _bound_socket("\0" + name) as sock:
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_sd_notify_silent_without_systemd_or_socket(tmp_path: Path) -> None:
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:123"}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "missing.sock")}) is False
    assert socket_address("@x") == "\0x" and socket_address("") is None


def test_watchdog_interval_parsing() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, pid=7) == 1.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "nope"}) is None
    assert watchdog_interval_s({}) is None


def test_notifier_rate_limits_watchdog_and_dedupes_status(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with _bound_socket(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        notifier.watchdog(0.0)
        notifier.watchdog(0.1)  # too soon: dropped
        notifier.status("a")
        notifier.status("a")  # unchanged: dropped
        notifier.watchdog(0.6)
        got = _received(sock)
    assert got == ["WATCHDOG=1", "STATUS=a", "WATCHDOG=1"]


def test_notifier_reload_sends_ready_again_and_never_during_start(tmp_path: Path) -> None:
    """RELOADING=1 (with systemd's clock) and the READY=1 ending it only once the start's READY is out:
    ``ready`` is once-only, so a reload needs its own READY or systemd keeps the unit reloading."""
    path = str(tmp_path / "n.sock")
    with _bound_socket(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path}, clock_usec=lambda: 123456789)
        assert notifier.reloading() is False  # still starting: systemd would ignore it
        notifier.reloaded()  # nothing to end: no READY before the worker's first heartbeat
        notifier.ready("running")
        assert notifier.reloading("checking") is True
        assert notifier.reloading() is False  # one reload at a time
        notifier.reloaded("running")
        notifier.reloaded("running")  # already ended
        got = _received(sock)
    assert got == [
        "READY=1\nSTATUS=running",
        "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=checking",
        "READY=1\nSTATUS=running",
    ]


def test_clean_env_strips_systemd_notify_variables() -> None:
    env = clean_env(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "CREDENTIALS_DIRECTORY": "/c"},
        {"EXTRA": "1"},
    )
    assert env == {"CREDENTIALS_DIRECTORY": "/c", "EXTRA": "1"}


def test_exit_info_describes_signals() -> None:
    assert ExitInfo.from_returncode(-9).signal == "SIGKILL"
    assert ExitInfo.from_returncode(78).code == 78
    assert ExitInfo.from_returncode(3).describe() == "exit code 3"


def test_checked_in_units_match_the_renderer() -> None:
    for name, text in default_units().items():
        assert (REPO / "systemd" / name).read_text() == text, f"systemd/{name} is stale: regenerate it"


def test_units_carry_the_required_directives() -> None:
    text = render(UnitParams())
    for directive in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "KillMode=mixed",
        "TimeoutStopSec=",
        "StateDirectory=cappuccino-paper",
        "LogsDirectory=cappuccino-paper",
        "LoadCredential=alpaca_api_key:",
        "EnvironmentFile=",
        "ProtectSystem=strict",
    ):
        assert directive in text, directive
    assert "\nMemoryDenyWriteExecute=" not in text  # PyTorch needs W+X pages
    template = render(UnitParams(), template=True)
    assert "daemon-%i.toml" in template and "StateDirectory=cappuccino-paper/%i" in template


@pytest.mark.parametrize("template", [False, True])
def test_systemd_analyze_verify(tmp_path: Path, template: bool) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian/Ubuntu package: systemd)")
    params = UnitParams(prefix=REPO, python=Path(sys.executable), user="root")
    name = "cappuccino-paper@ci.service" if template else UNIT_NAME
    unit = tmp_path / name
    unit.write_text(render(params, template=template))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], ours  # unknown or malformed directives are only warnings: treat them as failures


def test_install_unit_cli_prints_and_writes(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    base = [
        sys.executable,
        "-m",
        "cappuccino_daemon",
        "install-unit",
        "--prefix",
        str(tmp_path),
        "--user",
        "bob",
    ]
    printed = subprocess.run([*base, "--print", "--template"], capture_output=True, text=True, check=True)
    assert (
        f"ExecStart={sys.executable} -m cappuccino_daemon run --config {tmp_path}/config/daemon-%i.toml"
        in (printed.stdout)
    )
    assert "User=bob" in printed.stdout
    units = tmp_path / "units"
    subprocess.run([*base, "--unit-dir", str(units), "--no-credentials"], capture_output=True, check=True)
    assert sorted(p.name for p in units.iterdir()) == sorted([UNIT_NAME, TEMPLATE_NAME])
    assert "#LoadCredential=alpaca_api_key" in (units / UNIT_NAME).read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "install-unit", "--prefix", str(units), "--print"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 78 and "no config/ folder" in bad.stderr


def test_supervisor_never_imports_the_ml_or_broker_stack() -> None:
    code = (
        "import sys, cappuccino_daemon.supervisor.commands as c, cappuccino_daemon.supervisor.plans, "
        "cappuccino_daemon.supervisor.loop; "
        "heavy = ('torch', 'talib', 'alpaca', 'numpy', 'pandas', 'starlette', 'cappuccino_daemon.worker', "
        "'cappuccino_daemon.model', 'cappuccino_daemon.policy', 'cappuccino_daemon.broker', "
        "'cappuccino_daemon.emulator', 'apprise'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy[6:])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_plans_follow_systemd_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cappuccino_daemon.config import load_settings
    from cappuccino_daemon.supervisor.plans import build_config

    (tmp_path / "config").mkdir()
    (tmp_path / "model").mkdir()
    config = tmp_path / "config" / "daemon.toml"
    config.write_text('[model]\ndir = "model"\n[emulator]\nport = 8799\nsynthetic_seed = 3\n')
    for name in list(os.environ):
        if name.startswith("CAPPUCCINO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "var-lib"))
    plan = build_config(load_settings(config), config)
    assert plan.state_dir == tmp_path / "var-lib"
    # The worker checks the model itself (exit 78 before any broker request): no separate validation.
    assert plan.emulator is not None and plan.validate_argv is None
    # Children get the file and the environment (STATE_DIRECTORY is inherited), never re-serialised flags.
    assert plan.emulator.argv[-3:] == ["emulator", "--config", str(config)]
    assert plan.worker.argv[-3:] == ["worker", "--config", str(config)]
    assert load_settings(config).emulator.state_file == tmp_path / "var-lib" / "emulator.sqlite"
    # What the supervisor watches travels as CAPPUCCINO_<SECTION>__<KEY> overrides.
    ready = str(tmp_path / "var-lib" / "emulator.ready")
    assert plan.emulator.env == {"CAPPUCCINO_EMULATOR__READY_FILE": ready}
    assert plan.worker.env == {
        "CAPPUCCINO_WORKER__HEARTBEAT_FILE": str(tmp_path / "var-lib" / "heartbeat.json"),
        "CAPPUCCINO_WORKER__EXCHANGE_READY_FILE": ready,
        "CAPPUCCINO_BROKER__URL": "http://127.0.0.1:8799",
    }
    # What `run` hands to the lean supervisor across exec is the same plan.
    log = LogPlan(level="DEBUG", json=True, file=str(tmp_path / "logs" / "supervisor.log"))
    assert decode(encode(plan, log)) == (plan, log)


def _resumed(record: ChildRecord, policy: BackoffPolicy) -> ChildRuntime:
    child = ChildRuntime(ChildPlan(name=record.name, argv=["true"]), record)
    resume_backoff([child], NOW, 1000.0, policy)  # fake clocks: wall NOW, monotonic 1000
    return child


@pytest.mark.parametrize(
    ("saved_backoff", "next_start_at"),
    [
        (1e308, datetime(2099, 1, 1, tzinfo=UTC)),  # the damaged file of issue 9: a 72-year wait
        (float("nan"), datetime(2099, 1, 1, tzinfo=UTC)),
        (0.0, datetime(2099, 1, 1, tzinfo=UTC)),  # below the configured base
        (200.0, datetime(2099, 1, 1, tzinfo=UTC)),  # settings lowered since the file was written
    ],
)
def test_resumed_backoff_never_exceeds_the_configured_maximum(
    saved_backoff: float, next_start_at: datetime
) -> None:
    policy = BackoffPolicy(base_s=5.0, max_s=60.0, healthy_after_s=60.0)
    record = ChildRecord(
        name="worker",
        consecutive_failures=3,
        backoff_s=saved_backoff,
        next_start_at=next_start_at.isoformat(),
    )
    child = _resumed(record, policy)
    assert record.backoff_s == policy.delay(3) == 20.0  # replaced by what the policy gives
    assert child.next_start == 1000.0 + 20.0
    assert record.state == "backoff"
    assert datetime.fromisoformat(record.next_start_at or "") == NOW + timedelta(seconds=20)


def test_resumed_backoff_keeps_a_valid_pending_wait() -> None:
    policy = BackoffPolicy(base_s=5.0, max_s=60.0, healthy_after_s=60.0)
    record = ChildRecord(
        name="worker",
        consecutive_failures=4,
        backoff_s=40.0,
        next_start_at=(NOW + timedelta(seconds=25)).isoformat(),
    )
    child = _resumed(record, policy)
    assert record.backoff_s == 40.0 and child.next_start == 1025.0
    overdue = ChildRecord(
        name="worker", consecutive_failures=4, backoff_s=40.0, next_start_at=NOW.isoformat()
    )
    assert _resumed(overdue, policy).next_start == 1000.0  # already due: start at once
