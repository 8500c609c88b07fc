"""The real supervisor process against scripted fake children: real fork/exec, signals and sockets."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from supervisor_harness import Harness

from cappuccino_daemon.procinfo import pid_alive

FOREVER: dict[str, Any] = {"run_s": None}
CRASH: dict[str, Any] = {"run_s": 0, "exit": 3}


def _starts(h: Harness, role: str = "worker") -> list[dict[str, Any]]:
    return [e for e in h.child_events(role) if e["event"] == "start"]


def test_restart_counts_survive_supervisor_sigkill(harness: Harness) -> None:
    harness.write_config(worker=[CRASH, CRASH, FOREVER])
    harness.start()
    harness.wait_for(lambda: len(_starts(harness)) >= 3, message="third start")
    third = _starts(harness)[2]
    harness.wait_for(
        lambda: harness.state_json()["children"]["worker"]["pid"] == third["pid"], message="pid saved"
    )
    harness.kill()  # SIGKILL: no cleanup at all
    # PDEATHSIG: the orphaned worker is told to stop instead of trading unsupervised.
    harness.wait_for(lambda: not pid_alive(third["pid"]), timeout=5, message="orphan gone", running=False)
    saved = harness.state_json()["children"]["worker"]
    assert saved["restarts"] == 2 and saved["consecutive_failures"] == 2

    harness.start()
    harness.wait_for(lambda: len(_starts(harness)) >= 4, message="start after supervisor restart")
    harness.wait_for(lambda: harness.state_json()["children"]["worker"]["starts"] == 4, message="state saved")
    assert harness.stop() == 0
    state = harness.state_json()["children"]["worker"]
    assert state["restarts"] == 3 and state["starts"] == 4  # counted on, not from zero


def test_orphan_that_ignores_sigterm_is_reaped_by_the_next_supervisor(harness: Harness) -> None:
    harness.write_config(worker=[{"run_s": None, "ignore_term": True}, FOREVER])
    harness.start()
    first = harness.wait_for(lambda: _starts(harness), message="worker start")[0]
    harness.wait_for(lambda: harness.state_json()["children"]["worker"]["pid"] == first["pid"], message="pid")
    harness.kill()
    # Barrier, not a sleep: PDEATHSIG's SIGTERM has reached the fake worker, which records and ignores it.
    harness.wait_for(
        lambda: any(e["event"] == "sigterm" for e in harness.child_events("worker")),
        message="PDEATHSIG SIGTERM at the orphan",
        running=False,
    )
    assert pid_alive(first["pid"]), "the fake worker ignores PDEATHSIG's SIGTERM"
    harness.start()
    harness.wait_for(lambda: len(_starts(harness)) >= 2, timeout=10, message="new worker")
    assert harness.logs("orphan_found")[0]["pid"] == first["pid"]
    assert not pid_alive(first["pid"])
    assert harness.stop() == 0


def test_corrupt_state_file_is_rebuilt_not_a_crash_loop(harness: Harness) -> None:
    harness.state.mkdir(parents=True)
    (harness.state / "supervisor.json").write_text('{"version": 1, "children": {"wor')
    harness.write_config(worker=[FOREVER])
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    assert harness.logs("state_file_corrupt")
    assert list(harness.state.glob("supervisor.json.corrupt-*"))
    assert harness.stop() == 0
    assert harness.state_json()["status"] == "stopped"


def test_validation_failure_exits_78_without_starting_the_worker(harness: Harness) -> None:
    paragraph = "Model folder /x has no actor.pth. Point [model] dir at a trial folder."
    harness.write_config(worker=[FOREVER], validate=[{"run_s": 0, "exit": 78, "stderr": paragraph}])
    assert harness.run_to_exit() == 78
    failed = harness.logs("validation_failed")
    assert len(failed) == 1 and paragraph in failed[0]["error"] and failed[0]["fix"]
    assert _starts(harness) == []
    assert harness.state_json()["status"] == "given_up"


def test_worker_exit_78_gives_up_and_exits_78(harness: Harness) -> None:
    harness.write_config(worker=[{"run_s": 0.2, "exit": 78}, FOREVER])
    assert harness.run_to_exit() == 78
    assert len(_starts(harness)) == 1  # never restarted
    assert harness.logs("child_given_up")
    state = harness.state_json()
    assert state["status"] == "given_up" and state["children"]["worker"]["state"] == "given_up"


def test_worker_exit_0_is_a_deliberate_stop(harness: Harness) -> None:
    harness.write_config(worker=[{"run_s": 0.2, "exit": 0}, FOREVER])
    assert harness.run_to_exit() == 0
    assert len(_starts(harness)) == 1
    assert harness.state_json()["children"]["worker"]["last_exit_reason"] == "deliberate_stop"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_drains_the_worker_and_exits_0(harness: Harness, sig: int) -> None:
    # A generous stop timeout: the worker's 0.3 s drain must never race the SIGKILL on a loaded machine.
    harness.write_config(worker=[{"run_s": None, "term_delay_s": 0.3}], stop_timeout_s=30.0)
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    assert harness.stop(sig, timeout=60) == 0
    assert harness.logs("child_stopped")[0]["killed"] is False  # it drained on SIGTERM, no SIGKILL
    worker = harness.child_events("worker")
    assert [e["event"] for e in worker][-2:] == ["sigterm", "exit"]
    assert worker[-1]["why"] == "sigterm"
    state = harness.state_json()
    assert state["status"] == "stopped" and state["children"]["worker"]["pid"] is None


def test_sigterm_kills_a_worker_that_will_not_stop(harness: Harness) -> None:
    harness.write_config(worker=[{"run_s": None, "ignore_term": True}])
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    assert harness.stop() == 0
    stopped = harness.logs("child_stopped")[0]
    assert stopped["killed"] is True and stopped["signal"] == "SIGKILL"


def test_sd_notify_protocol_on_a_real_socket(harness: Harness, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    messages: list[str] = []

    def drain() -> list[str]:
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        return messages

    try:
        harness.write_config(worker=[FOREVER], validate=[{"run_s": 0.3, "exit": 0}])
        harness.start(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        harness.wait_for(lambda: sum(m == "WATCHDOG=1" for m in drain()) >= 3, message="watchdog pings")
        assert harness.stop() == 0
        drain()
    finally:
        sock.close()
    first = lambda prefix: next(i for i, m in enumerate(messages) if m.startswith(prefix))  # noqa: E731
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages)  # during validation
    assert sum(m.startswith("READY=1") for m in messages) == 1
    ready_at = first("READY=1")
    status_lines = [m for m in messages if m.startswith("STATUS=")]
    assert any("worker running" in m and "restarts 0" in m and "equity" in m for m in messages[ready_at:])
    assert status_lines
    assert messages[-1].startswith("STOPPING=1")
    # The worker never sees systemd's variables (NotifyAccess=main).
    worker_start = _starts(harness)[0]
    assert worker_start["env_notify"] is None and worker_start["env_watchdog"] is None
    # READY only after the worker's first heartbeat.
    assert harness.logs("child_first_heartbeat")[0]["timestamp"] <= harness.logs("sd_ready")[0]["timestamp"]


def test_second_supervisor_is_refused_by_the_lock(harness: Harness, tmp_path: Path) -> None:
    harness.write_config(worker=[FOREVER])
    first = harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="first supervisor running")
    second = Harness(tmp_path)
    second.log_path = tmp_path / "second.log"
    assert second.run_to_exit() == 78
    assert f"pid {first.pid}" in second.log_path.read_text()
    assert len(_starts(harness)) == 1  # the second one never spawned a worker
    assert harness.stop() == 0


def test_embedded_emulator_is_started_first_and_restarted(harness: Harness) -> None:
    harness.write_config(worker=[FOREVER], emulator=[{"run_s": 0.6, "exit": 1}, FOREVER])
    harness.start()
    harness.wait_for(lambda: len(_starts(harness, "emulator")) >= 2, message="emulator restarted")
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    assert harness.stop() == 0
    emulator_starts, worker_starts = _starts(harness, "emulator"), _starts(harness, "worker")
    # Spawned in that order, together: the worker waits for the exchange's ready file itself.
    assert [e["child"] for e in harness.logs("child_spawn")][:2] == ["emulator", "worker"]
    assert "--ready-file" in emulator_starts[0]["argv"]
    assert len(worker_starts) == 1  # an emulator restart does not restart the worker
    # Stop order: worker first, then the emulator.
    sigterms = [e for e in harness.child_events() if e["event"] == "sigterm"]
    assert [e["role"] for e in sigterms] == ["worker", "emulator"]
    assert (
        json.loads((harness.state / "supervisor.json").read_text())["children"]["emulator"]["restarts"] == 1
    )


def test_worker_given_up_runs_again_after_a_supervisor_restart(harness: Harness) -> None:
    # The give-up message says "fix it, then restart"; the restarted supervisor must start the worker
    # again instead of idling forever on the previous life's "given_up" (it did, with no error at all).
    harness.write_config(worker=[{"run_s": 0.2, "exit": 78}, FOREVER])
    assert harness.run_to_exit() == 78
    assert harness.state_json()["children"]["worker"]["state"] == "given_up"
    harness.start()
    second = harness.wait_for(lambda: _starts(harness)[1:], timeout=8, message="worker started again")[0]
    # Keyed on the new worker's pid: whether the first one lived long enough to be seen beating is
    # a matter of scheduling, so counting first-heartbeat lines would depend on it.
    harness.wait_for(
        lambda: [e for e in harness.logs("child_first_heartbeat") if e["pid"] == second["pid"]],
        message="second worker running",
    )
    assert harness.logs("given_up_cleared")
    assert harness.stop() == 0
    assert harness.state_json()["children"]["worker"]["state"] == "stopped"


def test_previous_unclean_supervisor_is_reported(harness: Harness) -> None:
    harness.write_config(worker=[FOREVER])
    first = harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    harness.kill()
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat")[1:], message="worker running again")
    unclean = harness.logs("previous_supervisor_unclean")
    assert len(unclean) == 1 and unclean[0]["pid"] == first.pid
    assert harness.stop() == 0


def test_validate_summary_is_logged_not_leaked_to_stdout(harness: Harness) -> None:
    summary = "OK trial_7_1h: ppo 128/239/7, lookback 3"
    harness.write_config(worker=[FOREVER], validate=[{"run_s": 0, "exit": 0, "stdout": summary}])
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    assert harness.stop() == 0
    assert harness.logs("validate_ok")[0]["summary"] == summary
    raw = [line for line in harness.log_path.read_text().splitlines() if not line.startswith("{")]
    assert raw == []  # journald sees one JSON object per line, nothing else


def test_damaged_backoff_in_state_file_does_not_stop_trading(harness: Harness) -> None:
    # Issue 9: backoff_s 1e308 and next_start_at in 2099 made the supervisor wait ~72 years, silently.
    harness.state.mkdir(parents=True)
    damaged = {
        "version": 1,
        "status": "stopped",
        "children": {
            "worker": {
                "name": "worker",
                "state": "backoff",
                "consecutive_failures": 2,
                "backoff_s": 1e308,
                "next_start_at": "2099-01-01T00:00:00+00:00",
            }
        },
    }
    (harness.state / "supervisor.json").write_text(json.dumps(damaged))
    harness.write_config(worker=[FOREVER])
    harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    replaced = harness.logs("saved_backoff_replaced")
    assert len(replaced) == 1 and replaced[0]["backoff_s"] == 0.4  # FAST policy: 0.2 * 2
    assert harness.logs("backoff_resumed")[0]["wait_s"] <= 0.8  # never beyond backoff_max_s
    assert harness.stop() == 0


def test_validation_process_dies_with_a_sigkilled_supervisor(harness: Harness) -> None:
    harness.write_config(worker=[FOREVER], validate=[FOREVER])  # a validation that never finishes
    harness.start()
    validator = harness.wait_for(lambda: _starts(harness, "validate"), message="validation started")[0]
    harness.kill()  # SIGKILL: the supervisor cannot stop its child itself
    harness.wait_for(
        lambda: not pid_alive(validator["pid"]), timeout=10, message="validator gone", running=False
    )
    assert [e["event"] for e in harness.child_events("validate")] == ["start", "sigterm", "exit"]
    assert _starts(harness) == []


def test_run_execs_into_the_lean_supervisor_under_the_same_pid(harness: Harness) -> None:
    harness.write_config(worker=[FOREVER])
    proc = harness.start()
    harness.wait_for(lambda: harness.logs("child_first_heartbeat"), message="worker running")
    # systemd's main process is still the pid it started, now without pydantic (or the ML stack).
    assert harness.state_json()["supervisor_pid"] == proc.pid
    assert "cappuccino_daemon.supervisor.main" in Path(f"/proc/{proc.pid}/cmdline").read_text()
    mapped = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "pydantic_core" not in mapped and "libtorch" not in mapped
    assert harness.logs("supervisor_start")[0]["modules"] > 0
    assert harness.stop() == 0
