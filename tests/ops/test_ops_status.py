"""``cappuccino-paper status``: known journal + supervisor state + heartbeat → the exact fields."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ops_helpers import BUY_AND_HOLD, CASH_AFTER_T1, EQUITY, T0, T1, T2, make_daemon, model_id_for

from cappuccino_daemon.cli import main
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.ops.status import StatusInputs, collect_status, find_journal


def _status(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["status", "--config", str(config), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_status_json_matches_known_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cappuccino_process: subprocess.Popen[bytes]
) -> None:
    d = make_daemon(tmp_path)
    d.supervisor_pid = d.worker_pid = cappuccino_process.pid
    d.write_supervisor(restarts=2, backoff_s=10.0)
    d.write_heartbeat()

    code, s = _status(capsys, d.config, "--check")

    assert code == 0
    assert s["schema"] == 1 and s["running"] is True and s["stale"] is False, s["problems"]
    assert s["paths"]["journal"] == str(d.journal)
    assert s["supervisor"]["status"] == "running" and s["supervisor"]["alive"] is True
    w = s["worker"]
    assert (w["pid"], w["alive"], w["restarts"], w["backoff_s"], w["consecutive_failures"]) == (
        cappuccino_process.pid, True, 2, 10.0, 1,
    )  # fmt: skip
    assert w["uptime_s"] is not None and 0 <= w["uptime_s"] < 60  # from /proc: the process just started
    hb = s["heartbeat"]
    assert hb["stale"] is False and hb["age_s"] < 30 and hb["phase"] == "WAITING"
    assert hb["last_bar"] == T2.isoformat() and hb["lag_s"] == 2.0

    j = s["journal"]
    assert j["model_id"] == model_id_for(d.model_dir) and j["chosen"] == "journal of the configured model"
    assert j["tickers"] == ["BTC", "ETH"] and j["p0"] == {"BTC": 100.0, "ETH": 10.0}
    assert j["counts"]["cycles"] == {"done": 2, "skipped": 1} and j["counts"]["cycles_total"] == 3
    assert j["counts"]["intents"] == {"filled": 2, "rejected": 1} and j["counts"]["intents_total"] == 3
    assert j["counts"]["fills"] == 2 and j["counts"]["fills_by_side"] == {"buy": 2, "sell": 0}
    assert j["last_bar"] == T2.isoformat()
    assert j["last_cycle"] == {"bar_time": T2.isoformat(), "status": "skipped", "lag_s": None,
                               "message": "gap: ETH bar missing"}  # fmt: skip
    dec = j["last_decision"]
    assert dec["bar_time"] == T1.isoformat() and dec["status"] == "done" and dec["lag_s"] == 2.0
    assert dec["action"] == pytest.approx({"BTC": 0.1, "ETH": 0.9})
    assert dec["orders"] == [
        {"ticker": "ETH", "side": "buy", "qty": 5.0, "kind": "buy"},
        {"ticker": "BTC", "side": "sell", "qty": 1.0, "kind": "sell"},
    ]

    a = s["account"]
    assert a["as_of_bar"] == T1.isoformat() and a["prices"] == {"BTC": 110.0, "ETH": 12.0}
    assert a["positions"] == {"BTC": 2.0, "ETH": 5.0}
    assert a["cash"] == pytest.approx(CASH_AFTER_T1)
    assert a["initial_capital"] == pytest.approx(1000.0)
    assert a["equity"] == pytest.approx(EQUITY)
    assert a["pnl"] == pytest.approx(EQUITY - 1000.0)
    assert a["return"] == pytest.approx(EQUITY / 1000.0 - 1)
    assert a["buy_and_hold_equity"] == pytest.approx(BUY_AND_HOLD)
    assert a["buy_and_hold_return"] == pytest.approx(0.15)
    assert a["vs_buy_and_hold"] == pytest.approx(EQUITY - BUY_AND_HOLD)


def test_status_flags_stale_heartbeat_and_dead_worker(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cappuccino_process: subprocess.Popen[bytes],
    dead_pid: int,
) -> None:
    d = make_daemon(tmp_path)
    d.supervisor_pid, d.worker_pid = cappuccino_process.pid, dead_pid
    d.write_supervisor()
    hb = d.write_heartbeat()
    old = time.time() - 600
    os.utime(hb, (old, old))

    code, s = _status(capsys, d.config, "--check")

    assert code == 1  # running (the supervisor is alive) but stale
    assert s["running"] is True and s["stale"] is True
    assert s["heartbeat"]["stale"] is True and s["heartbeat"]["age_s"] == pytest.approx(600, abs=30)
    assert s["worker"]["alive"] is False and s["worker"]["uptime_s"] is None
    assert any("heartbeat is 6" in p and "stale after 120s" in p for p in s["problems"]), s["problems"]
    assert any(p.startswith("worker is not running") for p in s["problems"]), s["problems"]
    assert s["account"]["equity"] == pytest.approx(EQUITY)  # the journal is still read


def test_status_after_the_daemon_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dead_pid: int
) -> None:
    d = make_daemon(tmp_path)
    d.supervisor_pid = d.worker_pid = dead_pid
    d.write_supervisor(status="stopped")
    d.write_heartbeat()

    code, s = _status(capsys, d.config, "--check")

    assert code == 3
    assert s["running"] is False and s["stale"] is True
    assert s["supervisor"]["alive"] is False
    assert any(
        "the daemon is not running" in p and "cappuccino-paper run --config" in p for p in s["problems"]
    )
    assert s["journal"]["counts"]["fills"] == 2  # history is still shown


def test_status_pid_of_an_unrelated_process_is_not_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = make_daemon(tmp_path)
    d.supervisor_pid = d.worker_pid = os.getppid()  # alive, but not a cappuccino process (a reused pid)
    d.write_supervisor()
    _, s = _status(capsys, d.config)
    assert s["supervisor"]["alive"] is False and s["running"] is False


def test_status_with_nothing_on_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_daemon(tmp_path, journal=False, model=False)

    code, s = _status(capsys, d.config)

    assert code == 0  # informational by default; --check gives 3
    assert s["running"] is False and s["stale"] is True
    assert (
        s["supervisor"] is None and s["heartbeat"] is None and s["journal"] is None and s["account"] is None
    )
    assert any("nothing has run with this state folder yet" in p for p in s["problems"])
    assert any(f"no heartbeat at {d.state / 'heartbeat.json'}" == p for p in s["problems"])

    assert main(["status", "--config", str(d.config)]) == 0
    screen = capsys.readouterr().out
    assert "NOT RUNNING" in screen and "cappuccino-paper run" in screen


def test_status_screen_shows_equity_and_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cappuccino_process: subprocess.Popen[bytes]
) -> None:
    d = make_daemon(tmp_path)
    d.supervisor_pid = d.worker_pid = cappuccino_process.pid
    d.write_supervisor()
    d.write_heartbeat()
    assert main(["status", "--config", str(d.config)]) == 0
    screen = capsys.readouterr().out
    assert "RUNNING" in screen and "NOT RUNNING" not in screen
    assert f"{EQUITY:,.2f}" in screen and f"{BUY_AND_HOLD:,.2f}" in screen
    assert "buy 5 ETH (buy)" in screen and "rejected 1" in screen


def test_status_reads_while_the_worker_holds_a_write_transaction(tmp_path: Path) -> None:
    """Read-only + WAL: status neither waits for nor blocks the worker's writes."""
    d = make_daemon(tmp_path)
    inputs = StatusInputs.from_settings(_settings(d.config))
    with Journal(d.journal) as writer, writer.transaction() as db:
        db.execute("UPDATE cycles SET message='in flight' WHERE bar_time=?", (T0.isoformat(),))
        result: dict[str, Any] = {}
        reader = threading.Thread(target=lambda: result.update(collect_status(inputs)))
        started = time.monotonic()
        reader.start()
        reader.join(timeout=20)
        elapsed = time.monotonic() - started
        # the writer can still commit after the read
    assert elapsed < 3.0
    assert result["journal"]["counts"]["cycles_total"] == 3
    with Journal(d.journal) as j:
        assert j.get_cycle(T0).message == "in flight"  # type: ignore[union-attr]


def test_find_journal_prefers_the_configured_model(tmp_path: Path) -> None:
    d = make_daemon(tmp_path)
    other = d.state / "journal" / "trial_9_1h-deadbeef.sqlite"
    Journal(other).close()
    found, note = find_journal(d.state, d.model_dir)
    assert found == d.journal and note == "journal of the configured model"
    (d.model_dir / "actor.pth").write_bytes(b"retrained")  # same folder, new actor: no exact journal
    found, note = find_journal(d.state, d.model_dir)
    assert found == d.journal and "actor.pth differs" in note
    found, note = find_journal(d.state, tmp_path / "trial_404_1h")
    assert found is not None and "NOT the configured model" in note


def test_status_damaged_journal_is_reported_not_raised(tmp_path: Path) -> None:
    d = make_daemon(tmp_path, journal=False)
    d.journal.parent.mkdir(parents=True)
    d.journal.write_bytes(b"this is not sqlite" * 100)
    s = collect_status(StatusInputs.from_settings(_settings(d.config)))
    assert s["journal"] is None
    assert any(str(d.journal) in p and "cannot be read" in p for p in s["problems"]), s["problems"]


def _settings(config: Path) -> Any:
    from cappuccino_daemon.config import load_settings

    return load_settings(config, require_model_dir=False)


def _mark_as_demo(model_dir: Path) -> None:
    """What `cappuccino-paper demo` writes into a trial folder's manifest (the parts status reads)."""
    manifest = {"user_attrs": {"demo": True}, "notes": ["demo model trained for 9.0 seconds, not a strategy"]}
    (model_dir / "cappuccino_manifest.json").write_text(json.dumps(manifest))


def test_status_says_demo_model_not_a_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_daemon(tmp_path)
    _, plain = _status(capsys, d.config)
    assert plain["model"] == {"dir": str(d.model_dir), "demo": False, "label": None}
    assert main(["status", "--config", str(d.config)]) == 0
    assert "not a strategy" not in capsys.readouterr().out

    _mark_as_demo(d.model_dir)
    _, demo = _status(capsys, d.config)
    assert demo["model"] == {"dir": str(d.model_dir), "demo": True, "label": "demo model, not a strategy"}
    assert main(["status", "--config", str(d.config)]) == 0
    screen = capsys.readouterr().out
    assert "demo model, not a strategy" in screen


def test_status_demo_label_ignores_a_damaged_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = make_daemon(tmp_path)
    (d.model_dir / "cappuccino_manifest.json").write_text("{not json")
    _, s = _status(capsys, d.config)
    assert s["model"]["demo"] is False and s["model"]["label"] is None
