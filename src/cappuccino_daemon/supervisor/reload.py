"""``systemctl reload`` (SIGHUP): check the edited configuration beside the running worker, then swap.

What a reload may change is what the worker reads at its start: ``[model]``/``[[models]]`` (models added
or removed), ``[risk]``, ``[notify]`` (the worker's alerts), ``[worker]`` and ``[logging]``. Anything
else (``[paths]``, ``[broker]``, ``[emulator]``, ``[supervisor]``, ``[metrics]``) is wired into the
supervisor or the embedded exchange, so a reload that changes it is refused with the sections named:
restart the service for those. The check runs ``cappuccino-paper validate`` (every model loaded and
checked, as at start) in a subprocess while the worker keeps trading; the supervisor stays lean and
polls it once per tick. Valid: the worker is stopped at its next safe point (SIGTERM, as for a
shutdown) and started again at once, without a failure counted or a backoff. Invalid: the worker
is untouched, the refusal logged as one paragraph and sent as an alert. Checks that need the broker
(capital against cash, the account lock) run when the new worker starts, exactly as at start.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def __init__(self, config_file: Path, baseline: dict[str, Any], env: dict[str, str]) -> None:
        self.config_file, self.baseline, self.env = config_file, baseline, env
        self.sections: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ReloadOutcome | None:
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
        argv = [sys.executable, "-m", "cappuccino_daemon", "validate", "--config", str(self.config_file)]
        try:
            self._proc = subprocess.Popen(
                argv,
                env=clean_env(extra=self.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            return ReloadOutcome(False, f"cannot run the configuration check ({exc})")
        return None

    def poll(self) -> ReloadOutcome | None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return None
        stdout, stderr = proc.communicate()
        if proc.returncode == 0:
            return ReloadOutcome(True, " ".join(stdout.decode(errors="replace").split())[-300:])
        text = " ".join(stderr.decode(errors="replace").split()) or f"validate exited {proc.returncode}"
        return ReloadOutcome(False, text[-800:])

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
