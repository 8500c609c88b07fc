"""config/daemon.toml loading: sources, path resolution, and one-paragraph errors that exit 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cappuccino_daemon.config import load_alpaca_credentials, load_settings
from cappuccino_daemon.errors import EX_CONFIG, ConfigError


def _write(tmp_path: Path, body: str, folder: str = "config") -> Path:
    cfg_dir = tmp_path / folder
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "m1").mkdir(parents=True, exist_ok=True)
    path = cfg_dir / "daemon.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_relative_paths_resolve_against_the_project_root(tmp_path: Path) -> None:
    """A config in config/ resolves model dir and state dir against the folder above it."""
    path = _write(tmp_path, '[model]\ndir = "models/m1"\n[paths]\nstate = "st"\n')
    settings = load_settings(path)
    assert settings.model.dir == (tmp_path / "models" / "m1").resolve()
    assert settings.paths.state == (tmp_path / "st").resolve()
    assert settings.supervisor.backoff_base_s == 5.0
    assert settings.supervisor.backoff_max_s == 300.0
    assert settings.supervisor.healthy_after_s == 60.0


def test_environment_overrides_toml_with_nested_delimiter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAPPUCCINO_SECTION__KEY beats the TOML value."""
    path = _write(tmp_path, '[model]\ndir = "models/m1"\n[worker]\npoll_interval_s = 60\n')
    monkeypatch.setenv("CAPPUCCINO_WORKER__POLL_INTERVAL_S", "7.5")
    monkeypatch.setenv("CAPPUCCINO_BROKER__KIND", "alpaca-paper")
    settings = load_settings(path)
    assert settings.worker.poll_interval_s == 7.5
    assert settings.broker.kind == "alpaca-paper"


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            '[model]\ndir = "models/m1"\n[worker]\npoll_intervall_s = 3\n',
            ["unknown key", "worker.poll_intervall_s"],
        ),
        (
            '[model]\ndir = "models/m1"\n[worker]\npoll_interval_s = "soon"\n',
            ["worker.poll_interval_s", "number"],
        ),
        ('[model]\ndir = "models/m1"\n[broker]\nkind = "live"\n', ["broker.kind", "emulator"]),
        ('[model]\ndir = "models/nope"\n', ["models/nope", "does not exist", "cappuccino-paper demo"]),
        ("[worker]\npoll_interval_s = 3\n", ["missing required key 'model'"]),
        (
            '[model]\ndir = "models/m1"\n[broker]\napi_key = "PKABCDEFGHIJKLMNOP"\n',
            ["credentials", "ALPACA_API_KEY"],
        ),
        ('[model\ndir = "x"\n', ["Cannot parse", "TOML"]),
    ],
)
def test_bad_config_is_one_paragraph_naming_file_key_and_fix(
    tmp_path: Path, body: str, needles: list[str]
) -> None:
    """Every bad config gives a ConfigError whose single paragraph names the file and the problem."""
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    assert "PKABCDEFGHIJKLMNOP" not in message


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_cli_exits_78_on_bad_config(tmp_path: Path) -> None:
    """The real command exits with EX_CONFIG and prints the paragraph, not a traceback."""
    path = _write(tmp_path, '[model]\ndir = "models/m1"\n[worker]\nbogus = 1\n')
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "worker.bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_credentials_from_environment_and_systemd_credentials(tmp_path: Path) -> None:
    """Keys come from env vars or $CREDENTIALS_DIRECTORY files, and never print in a repr."""
    creds = load_alpaca_credentials(
        {"ALPACA_API_KEY": "PKTESTKEY1234567890", "ALPACA_API_SECRET": "s3cr3t-value-xyz"}
    )
    assert creds is not None and creds.secret_key == "s3cr3t-value-xyz"
    assert "s3cr3t" not in repr(creds)
    (tmp_path / "alpaca_api_key").write_text("PKFROMFILE000000000\n")
    (tmp_path / "alpaca_api_secret").write_text("file-secret-abcdef\n")
    from_files = load_alpaca_credentials({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert from_files is not None and from_files.key_id == "PKFROMFILE000000000"
    assert load_alpaca_credentials({}) is None
