"""An extra pre-start check, only when ``[supervisor] validate_command`` is set (by default the worker
checks the model itself before trading). It runs in a subprocess (torch never enters us) that dies with
us (PDEATHSIG).

While it runs, systemd's start timeout is extended and a stop request interrupts it. The outcome is
one of: fine, interrupted by a stop request, or failed with a one-paragraph reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from cappuccino_daemon.clock import Clock
from cappuccino_daemon.errors import EX_CONFIG
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.supervisor.child import ExitInfo, clean_env, die_with_parent, stop_child
from cappuccino_daemon.supervisor.notify import Notifier

log = get_logger(__name__)


@dataclass(frozen=True)
class ValidationOutcome:
    """``ok``: start the children; ``interrupted``: a stop was requested meanwhile; else ``error``."""

    ok: bool = False
    interrupted: bool = False
    error: str = ""
    exit_code: int | None = None


def run_validation(
    argv: list[str],
    *,
    timeout_s: float,
    poll_s: float,
    stop_timeout_s: float,
    notifier: Notifier,
    clock: Clock,
    wait: Callable[[float], None],
    stop_requested: Callable[[], bool],
) -> ValidationOutcome:
    notifier.status("validating configuration and model")
    log.info("validate_start", command=argv)
    try:
        proc = subprocess.Popen(
            argv,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # its one-line summary goes into our structured log, not raw stdout
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a SIGKILLed supervisor must not leave it running
        )
    except OSError as exc:
        return ValidationOutcome(error=f"cannot run {argv[0]}: {exc}")
    deadline = clock.monotonic() + timeout_s
    stdout = stderr = b""
    while True:
        notifier.extend_timeout(clock.monotonic(), 30.0)
        try:
            stdout, stderr = proc.communicate(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            pass
        if stop_requested() or clock.monotonic() > deadline:
            stop_child(proc, stop_timeout_s, wait, clock.monotonic)
            if stop_requested():
                log.info("validate_interrupted")
                return ValidationOutcome(interrupted=True)
            return ValidationOutcome(error=f"validation did not finish within {timeout_s:.0f} s")
    text = (stderr or b"").decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        log.info("validate_ok", summary=" ".join((stdout or b"").decode("utf-8", "replace").split())[:500])
        return ValidationOutcome(ok=True)
    if proc.returncode == EX_CONFIG:
        return ValidationOutcome(error=text or "validate reported a configuration problem", exit_code=78)
    return ValidationOutcome(
        error=f"validate crashed with {ExitInfo.from_returncode(proc.returncode).describe()}: {text[-2000:]}",
        exit_code=proc.returncode,
    )
