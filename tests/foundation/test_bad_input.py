"""Issue 9: bad settings, environment overrides and flags end in one paragraph and exit 78 (or 2), never a
traceback, and `validate` refuses exactly what `run` refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from cappuccino_daemon.config import DaemonSettings, load_settings
from cappuccino_daemon.errors import EX_CONFIG, ConfigError


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, with a clean CAPPUCCINO_* environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CAPPUCCINO_")}
    return subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**base, **(env or {})},
    )


def assert_one_paragraph(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert err and "\n\n" not in err
    if code == EX_CONFIG:
        assert "\n" not in err, err  # exactly one paragraph, one line
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "models" / "m1").mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config" / "daemon.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[model]\ndir = "models/m1"\n' + body, encoding="utf-8")
    return config


def test_environment_variable_naming_a_whole_section_is_named(tmp_path: Path) -> None:
    """CAPPUCCINO_WORKER=junk used to be a pydantic-settings SettingsError traceback."""
    config = _project(tmp_path, "")
    proc = cli("status", "--config", str(config), env={"CAPPUCCINO_WORKER": "junk"})
    assert_one_paragraph(proc, EX_CONFIG, "CAPPUCCINO_WORKER", "[worker]", "CAPPUCCINO_WORKER__", "unset")


def test_environment_value_that_breaks_a_rule_names_its_variable(tmp_path: Path) -> None:
    config = _project(tmp_path, "")
    proc = cli("status", "--config", str(config), env={"CAPPUCCINO_SUPERVISOR__STOP_TIMEOUT_S": "inf"})
    assert_one_paragraph(
        proc, EX_CONFIG, "supervisor.stop_timeout_s", "CAPPUCCINO_SUPERVISOR__STOP_TIMEOUT_S"
    )


@pytest.mark.parametrize("key", ["stop_timeout_s", "backoff_max_s"])
def test_infinite_supervisor_timeouts_are_refused(tmp_path: Path, key: str) -> None:
    """`gt=0` let infinity through; a SIGTERM grace of infinity would hang every stop."""
    config = _project(tmp_path, f"[supervisor]\n{key} = inf\n")
    proc = cli("validate", "--config", str(config))
    assert_one_paragraph(proc, EX_CONFIG, f"supervisor.{key}", "finite", str(config))


def _float_settings() -> list[tuple[str, str]]:
    found = []
    for section, info in DaemonSettings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for key, field in annotation.model_fields.items():
                if field.annotation is float:
                    found.append((section, field.alias or key))
    return found


@pytest.mark.parametrize(("section", "key"), _float_settings())
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_float_setting_refuses_non_finite_numbers(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    assert len(_float_settings()) >= 10  # the walk found the float settings
    config = _project(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert f"{section}.{key}" in str(info.value) and "finite" in str(info.value)


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("[supervisor]\nbackoff_base_s = 50\nbackoff_max_s = 4\n", ["backoff_max_s", "backoff_base_s"]),
        ("[emulator]\nport = 0\n", ["[emulator] port = 0", "8765"]),
        ('[supervisor]\nworker_command = ["python", "x"]\n', ["worker_command", "no longer supported"]),
    ],
)
def test_validate_and_run_refuse_the_same_rules_alike(tmp_path: Path, body: str, needles: list[str]) -> None:
    """Every rule lives in the settings model, so `validate` says what `run` says (these used to pass)."""
    config = _project(tmp_path, body + '[paths]\nstate = "st"\n')
    messages = []
    for command in ("validate", "run"):
        err = assert_one_paragraph(cli(command, "--config", str(config)), EX_CONFIG, *needles, str(config))
        messages.append(err.split(": ", 1)[1])
    assert messages[0] == messages[1]
    assert not (tmp_path / "st").exists()  # run refused before creating anything


def test_config_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    config = _project(tmp_path, "")
    proc = cli("status", "--config", str(config.parent))
    err = assert_one_paragraph(proc, EX_CONFIG, "is a directory", f"--config {config}")
    assert "does not exist" not in err


def test_first_start_without_a_config_points_at_init_and_config(tmp_path: Path) -> None:
    """It used to say `cp config/daemon.toml config/daemon.toml`, a copy onto itself."""
    proc = cli("run", cwd=tmp_path)
    err = assert_one_paragraph(
        proc, EX_CONFIG, "config/daemon.toml", "does not exist", "`cappuccino-paper init`"
    )
    assert "--config" in err and "cp config/daemon.toml" not in err


def test_missing_config_under_another_project_names_init_with_that_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "proj" / "config" / "daemon.toml")
    assert f"`cappuccino-paper init {tmp_path / 'proj'}`" in str(info.value)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--speed", "inf"], "--speed"),
        (["--cash", "1e308"], "--cash"),
        (["--fee-pct", "nan"], "--fee-pct"),
        (["--page-size", "0"], "--page-size"),
    ],
)
def test_emulator_flags_out_of_range_are_usage_errors(args: list[str], flag: str) -> None:
    """--port 99999 used to be an OverflowError traceback from the socket layer."""
    assert_one_paragraph(cli("emulator", *args), 2, f"argument {flag}")


def test_replay_capital_too_large_is_refused_before_any_work(tmp_path: Path) -> None:
    """--capital 1e308 used to overflow, then crash on an InvariantViolation."""
    proc = cli(
        "replay", "--model-dir", str(tmp_path / "none"), "--bars-dir", str(tmp_path), "--out",
        str(tmp_path / "r.jsonl"), "--capital", "1e308",
    )  # fmt: skip
    assert_one_paragraph(proc, EX_CONFIG, "--capital", "1e+12")
    assert not (tmp_path / "r.jsonl").exists()


def test_broken_symlink_config_names_its_target(tmp_path: Path) -> None:
    link = tmp_path / "daemon.toml"
    link.symlink_to(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match=r"symbolic link to .*gone\.toml"):
        load_settings(link)
