"""``cappuccino-paper init``: the first start writes the shipped default config, state/ and logs/."""

from __future__ import annotations

from pathlib import Path

from test_bad_input import assert_one_paragraph, cli

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.errors import EX_CONFIG
from cappuccino_daemon.init_project import default_config_text


def test_packaged_default_is_byte_identical_to_the_repository_config(repo_root: Path) -> None:
    """config/daemon.toml is the source; src/cappuccino_daemon/default_daemon.toml must be a copy of it.
    Fix a failure with: cp config/daemon.toml src/cappuccino_daemon/default_daemon.toml"""
    assert default_config_text() == (repo_root / "config" / "daemon.toml").read_bytes()


def test_init_writes_config_state_and_logs(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    proc = cli("init", str(project))
    assert proc.returncode == 0, proc.stderr
    config = project / "config" / "daemon.toml"
    assert config.read_bytes() == default_config_text()
    assert (project / "state").is_dir() and (project / "logs").is_dir()
    assert "cappuccino-paper demo" in proc.stdout
    settings = load_settings(config, require_model_dir=False)  # the written file is a valid config
    assert settings.model.dir == (project / "demo" / "best_model").resolve()
    assert settings.paths.state == (project / "state").resolve()


def test_init_defaults_to_the_current_folder_and_then_run_finds_the_config(tmp_path: Path) -> None:
    assert cli("init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "config" / "daemon.toml").is_file()
    # The config now exists: `validate` gets past it and asks for the demo model it points at.
    assert_one_paragraph(cli("validate", cwd=tmp_path), EX_CONFIG, "demo/best_model", "cappuccino-paper demo")


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    config = tmp_path / "config" / "daemon.toml"
    assert cli("init", str(tmp_path)).returncode == 0
    config.write_text("# my edits\n", encoding="utf-8")
    assert_one_paragraph(cli("init", str(tmp_path)), EX_CONFIG, str(config), "already exists", "--force")
    assert config.read_text(encoding="utf-8") == "# my edits\n"
    assert cli("init", str(tmp_path), "--force").returncode == 0
    assert config.read_bytes() == default_config_text()


def test_init_into_a_file_is_one_paragraph(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x", encoding="utf-8")
    assert_one_paragraph(cli("init", str(blocker)), EX_CONFIG, str(blocker), "Cannot create the project")
