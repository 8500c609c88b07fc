"""The reload's check (supervisor/reload.py) on real subprocesses: a check that never ends is stopped at
its deadline (the time is passed in, so no wall-clock window), and one that writes far more than a pipe
holds still finishes (its output goes to files). Refusals before any subprocess: sections a reload cannot
apply, and a file that is not TOML."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cappuccino_daemon.procinfo import pid_alive
from cappuccino_daemon.supervisor.reload import Reload, ReloadOutcome, read_sections

BASE = '[[models]]\ndir = "a_1h"\n\n[paths]\nstate = "state"\n'


def _config(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _until_done(check: Reload, now: float = 0.0, within_s: float = 30.0) -> ReloadOutcome:
    """Poll at a fixed ``now`` (never past the deadline) until the subprocess has ended."""
    give_up = time.monotonic() + within_s
    while (outcome := check.poll(now)) is None:
        assert time.monotonic() < give_up, "the check never ended"
        time.sleep(0.02)
    return outcome


def test_a_check_that_never_ends_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    config = _config(tmp_path)
    hang = [sys.executable, "-c", "import time; time.sleep(3600)"]
    check = Reload(config, read_sections(config), {}, timeout_s=60.0, check_argv=hang)
    assert check.start(now=100.0) is None
    proc = check._proc
    assert proc is not None
    assert check.poll(now=159.0) is None  # before the deadline: still running, still waited for
    outcome = check.poll(now=160.0)
    assert outcome is not None and not outcome.ok
    assert "longer than 60 s" in outcome.message and str(config) in outcome.message
    assert proc.returncode is not None and not pid_alive(proc.pid)


def test_a_check_with_more_output_than_a_pipe_holds_finishes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    chatty = [
        sys.executable,
        "-c",
        "import sys; print('w' * 300_000, file=sys.stderr); print('the last word', file=sys.stderr); "
        "sys.exit(78)",
    ]
    check = Reload(config, read_sections(config), {}, timeout_s=60.0, check_argv=chatty)
    assert check.start(now=0.0) is None
    outcome = _until_done(check)
    assert not outcome.ok and outcome.message.endswith("the last word") and len(outcome.message) <= 800


def test_refusals_before_any_subprocess(tmp_path: Path) -> None:
    config = _config(tmp_path)
    baseline = read_sections(config)
    never = [sys.executable, "-c", "raise SystemExit('must not run')"]
    config.write_text(BASE + '\n[broker]\nkind = "emulator"\n', encoding="utf-8")
    fixed = Reload(config, baseline, {}, timeout_s=60.0, check_argv=never).start(now=0.0)
    assert fixed is not None and not fixed.ok and "[broker] changed" in fixed.message
    config.write_text("[[models]\n", encoding="utf-8")
    broken = Reload(config, baseline, {}, timeout_s=60.0, check_argv=never).start(now=0.0)
    assert broken is not None and "cannot be read as TOML" in broken.message


def test_a_passing_check_reports_its_summary(tmp_path: Path) -> None:
    config = _config(tmp_path)
    baseline = read_sections(config)
    config.write_text(BASE + "\n[risk]\nmax_drawdown = 0.2\n", encoding="utf-8")  # reloadable: checked
    ok = [sys.executable, "-c", "print('OK a_1h:\\n  fine')"]
    check = Reload(config, baseline, {}, timeout_s=60.0, check_argv=ok)
    assert check.start(now=0.0) is None
    outcome = _until_done(check)
    assert outcome.ok and outcome.message == "OK a_1h: fine"
    assert check.sections is not None and check.sections["risk"] == {"max_drawdown": 0.2}
