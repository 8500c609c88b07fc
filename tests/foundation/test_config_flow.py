"""Issue 10, one configuration flow: ``DaemonSettings`` holds every default once, each composition root
derives its configuration from it, flags are validated overrides, and `run` hands children the file."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bad_input import assert_one_paragraph, cli

from cappuccino_daemon.cli import build_parser
from cappuccino_daemon.config import (
    DEFAULT_SYNTHETIC_SEED,
    DaemonSettings,
    WorkerSection,
    apply_overrides,
    load_settings,
    settings_without_file,
)
from cappuccino_daemon.emulator.commands import emulator_options, emulator_settings
from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.supervisor.plans import build_config
from cappuccino_daemon.worker.build import WorkerOptions, worker_options
from cappuccino_daemon.worker.commands import worker_settings
from cappuccino_daemon.worker.cycle import CycleConfig
from cappuccino_daemon.worker.loop import WorkerLoop

# The documented defaults (README "Configuration"); each is written once, in config.py.
DOCUMENTED_WORKER = {
    "poll_interval_s": 60.0,
    "history_hours": 500,
    "grace_s": 5.0,
    "fill_timeout_s": 30.0,
    "gap_wait_s": 300.0,
    "http_timeout_s": 10.0,
    "exchange_wait_s": 120.0,
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("CAPPUCCINO_") or name in ("STATE_DIRECTORY", "LOGS_DIRECTORY"):
            monkeypatch.delenv(name)
    yield


def _config(tmp_path: Path, body: str = "") -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "model"\n' + body, encoding="utf-8")
    return config


def test_worker_options_from_default_settings_equal_the_documented_defaults(tmp_path: Path) -> None:
    opts = worker_options(settings_without_file(tmp_path))
    assert {key: getattr(opts, key) for key in DOCUMENTED_WORKER} == DOCUMENTED_WORKER
    assert opts.broker_kind == "emulator" and opts.broker_url == "http://127.0.0.1:8765"
    assert opts.max_clock_skew_s is None  # the emulator's clock is simulated
    alpaca = apply_overrides(
        settings_without_file(tmp_path), {("broker", "kind"): ("--broker", "alpaca-paper")}
    )
    assert worker_options(alpaca).max_clock_skew_s == WorkerSection().max_clock_skew_s == 30.0


def test_every_worker_default_exists_once(tmp_path: Path) -> None:
    """WorkerOptions' own defaults are the settings' (not copies that can drift); the cycle and the
    loop take theirs from the options, with no defaults of their own."""
    fields = {f.name: f.default for f in dataclasses.fields(WorkerOptions)}
    derived = worker_options(settings_without_file(tmp_path))
    for key in DOCUMENTED_WORKER:
        assert fields[key] == getattr(derived, key), key
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(CycleConfig))
    poll = inspect.signature(WorkerLoop.__init__).parameters["poll_interval_s"]
    assert poll.default is inspect.Parameter.empty


def _emulator(argv: list[str]) -> EmulatorOptions:
    args = build_parser().parse_args(["emulator", *argv])
    return emulator_options(emulator_settings(args), args)


def test_standalone_and_embedded_emulator_serve_the_same_market(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They used to differ (seed 1 standalone, 7 under `run`): two markets for the same settings."""
    config = _config(tmp_path)
    standalone = _emulator([])
    plan = build_config(load_settings(config), config)
    assert plan.emulator is not None
    for name, value in plan.emulator.env.items():  # what the supervisor hands its emulator child
        monkeypatch.setenv(name, value)
    embedded = _emulator(plan.emulator.argv[plan.emulator.argv.index("emulator") + 1 :])
    assert standalone.synthetic_seed == embedded.synthetic_seed == DEFAULT_SYNTHETIC_SEED
    assert EmulatorOptions().synthetic_seed == DEFAULT_SYNTHETIC_SEED
    market = ("bars_dir", "synthetic_seed", "start", "speed", "host", "port", "initial_cash", "taker_fee")
    assert [getattr(standalone, k) for k in market] == [getattr(embedded, k) for k in market]
    assert embedded.ready_file == load_settings(config).paths.state / "emulator.ready"
    assert standalone.state_file is None  # no --config: in memory, as before


def test_emulator_flags_override_the_configured_market(tmp_path: Path) -> None:
    config = _config(tmp_path, "[emulator]\nsynthetic_seed = 3\nspeed = 600.0\n")
    assert _emulator(["--config", str(config)]).synthetic_seed == 3
    options = _emulator(["--config", str(config), "--synthetic", "11", "--port", "0"])
    assert (options.synthetic_seed, options.speed, options.port) == (11, 600.0, 0)


def test_worker_flags_override_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, "[worker]\npoll_interval_s = 2.0\nbar_close_grace_s = 1.0\n")

    def settings(*flags: str) -> DaemonSettings:
        return worker_settings(build_parser().parse_args(["worker", "--config", str(config), *flags]))

    assert settings().worker.poll_interval_s == 2.0
    monkeypatch.setenv("CAPPUCCINO_WORKER__POLL_INTERVAL_S", "3")
    assert settings().worker.poll_interval_s == 3.0
    overridden = settings("--poll-interval", "7", "--grace", "0", "--tickers", "btc,eth")
    assert (overridden.worker.poll_interval_s, overridden.worker.bar_close_grace_s) == (7.0, 0.0)
    assert overridden.model.tickers == ["BTC", "ETH"]


def test_worker_under_run_gets_its_paths_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "[emulator]\nport = 8799\n")
    plan = build_config(load_settings(config), config)
    for name, value in plan.worker.env.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(plan.worker.argv[plan.worker.argv.index("worker") :])
    opts = worker_options(worker_settings(args), exchange_wait_s=args.exchange_wait)
    assert opts.heartbeat_file == plan.worker.heartbeat_file
    assert plan.emulator is not None and opts.exchange_ready_file == plan.emulator.ready_file
    assert opts.broker_url == "http://127.0.0.1:8799" and opts.exchange_wait_s == 120.0


def test_supervisor_launches_children_with_config(tmp_path: Path) -> None:
    config = _config(tmp_path, '[broker]\nkind = "alpaca-paper"\n')
    plan = build_config(load_settings(config), config)
    assert plan.emulator is None and plan.validate_argv is None
    assert plan.worker.argv[1:] == ["-m", "cappuccino_daemon", "worker", "--config", str(config.resolve())]
    assert plan.worker.env == {
        "CAPPUCCINO_WORKER__HEARTBEAT_FILE": str(tmp_path / "state" / "heartbeat.json")
    }


def test_invalid_override_names_the_flag_and_the_setting(tmp_path: Path) -> None:
    settings = settings_without_file(tmp_path)
    with pytest.raises(ConfigError) as info:
        apply_overrides(settings, {("worker", "poll_interval_s"): ("--poll-interval", -1)})
    text = str(info.value)
    assert "--poll-interval" in text and "[worker]" in text and "poll_interval_s" in text and "\n" not in text


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [("--grace", "-1", "greater than or equal to 0"), ("--poll-interval", "inf", "finite")],
)
def test_worker_flag_breaking_the_setting_rule_is_a_usage_error(
    tmp_path: Path, flag: str, value: str, needle: str
) -> None:
    (tmp_path / "model").mkdir()
    proc = cli("worker", "--model-dir", str(tmp_path / "model"), flag, value, cwd=tmp_path)
    assert_one_paragraph(proc, 2, flag, needle)


def test_retired_validate_timeout_still_loads_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "[supervisor]\nvalidate_timeout_s = 100\nstop_timeout_s = 5\n")
    assert load_settings(config).supervisor.stop_timeout_s == 5
    err = capsys.readouterr().err
    assert "validate_timeout_s" in err and "ignored" in err and str(config) in err


def test_retired_test_hooks_are_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, '[supervisor]\nemulator_command = ["true"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "emulator_command" in str(info.value) and "--config" in str(info.value)
