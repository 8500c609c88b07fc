"""``systemctl reload`` (SIGHUP): check the edited configuration beside the running worker, then swap.

What a reload may change is what the worker reads at its start: ``[model]``/``[[models]]`` (models added or
removed), ``[risk]``, ``[notify]`` (the worker's alerts), ``[worker]`` and ``[logging]``. Anything else
(``[paths]``, ``[broker]``, ``[emulator]``, ``[supervisor]``, ``[metrics]``) is wired into the supervisor or
the embedded exchange, so a reload that changes it is refused with the sections named: restart the service
for those. The check runs ``cappuccino-paper validate`` (every model loaded and checked, as at start) in a
subprocess while the worker keeps trading; the supervisor stays lean and polls it once per tick (its output
goes to unnamed temporary files, so a chatty check cannot fill a pipe and hang; one that outlasts
``timeout_s`` is killed and the reload refused). Valid: the worker is stopped at its next safe point
(SIGTERM, as for a shutdown) and started again at once, without a failure counted or a backoff. Invalid: the
worker is untouched, the refusal logged as one paragraph and sent as an alert. Checks that need the broker
(capital against cash, the account lock) run when the new worker starts, exactly as at start.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cappuccino_daemon.supervisor.child import clean_env, die_with_parent

RELOADABLE = frozenset({"model", "models", "risk", "notify", "worker", "logging"})


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    message: str


def read_sections(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def fixed_sections_changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    keys = (set(before) | set(after)) - RELOADABLE
    return sorted(k for k in keys if before.get(k) != after.get(k))


class Reload:
    """One SIGHUP's check; ``poll`` returns None while ``validate`` still runs."""

    def __init__(
        self,
        config_file: Path,
        baseline: dict[str, Any],
        env: dict[str, str],
        timeout_s: float,
        check_argv: list[str] | None = None,
    ) -> None:
        """``check_argv`` replaces ``cappuccino-paper validate --config FILE`` (tests only)."""
        self.config_file, self.baseline, self.env = config_file, baseline, env
        self.timeout_s = timeout_s
        self.check_argv = check_argv or [
            sys.executable,
            "-m",
            "cappuccino_daemon",
            "validate",
            "--config",
            str(config_file),
        ]
        self.sections: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None
        self._deadline = 0.0

    def start(self, now: float) -> ReloadOutcome | None:
        """Spawn the check; an outcome right away when the file cannot be reloaded at all."""
        try:
            self.sections = read_sections(self.config_file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            return ReloadOutcome(
                False, f"{self.config_file} cannot be read as TOML ({exc}); fix it and reload again"
            )
        changed = fixed_sections_changed(self.baseline, self.sections)
        if changed:
            names = ", ".join(f"[{k}]" for k in changed)
            return ReloadOutcome(
                False,
                f"{self.config_file}: {names} changed, and a reload cannot apply those (they are wired into "
                "the supervisor or the embedded exchange). Undo them and reload, or apply them with "
                "`systemctl restart cappuccino-paper`.",
            )
        # They outlive this call (read when the check ends), so no ``with``; closed in poll/cancel.
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                self.check_argv,
                env=clean_env(extra=self.env),
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            self._close_files()
            return ReloadOutcome(False, f"cannot run the configuration check ({exc})")
        self._deadline = now + self.timeout_s
        return None

    def poll(self, now: float) -> ReloadOutcome | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            if now < self._deadline:
                return None
            self.cancel()
            return ReloadOutcome(
                False,
                f"checking {self.config_file} took longer than {self.timeout_s:g} s and was stopped (a model "
                "folder on a slow or hung disk?); the worker keeps the old configuration, reload again",
            )
        stdout, stderr = self._read(self._out), self._read(self._err)
        self._close_files()
        if proc.returncode == 0:
            return ReloadOutcome(True, " ".join(stdout.split())[-300:])
        text = " ".join(stderr.split()) or f"validate exited {proc.returncode}"
        return ReloadOutcome(False, text[-800:])

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_files()

    @staticmethod
    def _read(fh: IO[bytes] | None) -> str:
        if fh is None:
            return ""
        fh.seek(0)
        return fh.read().decode(errors="replace")

    def _close_files(self) -> None:
        for fh in (self._out, self._err):
            if fh is not None:
                fh.close()
        self._out = self._err = None
