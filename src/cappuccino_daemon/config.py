"""``config/daemon.toml``: the one file a user edits, loaded once, validated, frozen.

Sources, strongest first: environment (``CAPPUCCINO_<SECTION>__<KEY>``), then the TOML file, then the
defaults below. This module is the only place a default is written down: each composition root
(worker, emulator, supervisor) derives its component configuration from a ``DaemonSettings``, and a
command-line flag is an override applied to it (``apply_overrides``) and validated by the same field
rules. Relative paths are resolved against the project root: the parent of the folder holding
the TOML when that folder is named ``config`` (so ``config/daemon.toml`` paths read from the checkout),
otherwise the TOML's own folder. Alpaca keys are never read from the TOML (see ``load_alpaca_credentials``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.layout import StateLayout

ENV_PREFIX = "CAPPUCCINO_"
DEFAULT_CONFIG = Path("config/daemon.toml")
SECRET_KEYS = {"api_key", "api_secret", "key_id", "secret_key", "alpaca_api_key", "alpaca_api_secret"}
DEFAULT_SYNTHETIC_SEED = 7  # the embedded and the standalone emulator serve the same synthetic market


def env_name(section: str, key: str) -> str:
    """The environment variable overriding ``[section] key`` (how ``run`` hands run-specific paths on)."""
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


class _Section(BaseModel):
    # allow_inf_nan=False: TOML accepts `inf` and `nan`, and `gt=0` lets infinity through; a timeout or
    # backoff of infinity is never what a user meant, so every float setting must be a finite number.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# The env profiles a model may be pinned to (model/profiles.py PROFILE_NAMES; config sits below model).
ProfileName = Literal["finrl-crypto", "cappuccino-nov2025"]
# A model name is a journal file name, a log/metric label and part of its client_order_id prefix.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


class RiskLimits(_Section):
    """One model's risk limits (``[risk]`` defaults, a ``[[models]]`` table's ``risk`` overrides).

    Fractions, not dollars, so one ``[risk]`` table fits models of any capital. A breach of
    ``max_drawdown`` (from the sub-account's peak equity) or ``daily_loss`` (from its equity at the
    first decision of the UTC day) halts the model until ``cappuccino-paper resume-model NAME``; the
    order limits cut single orders and never halt.
    """

    max_drawdown: float | None = Field(default=None, gt=0, lt=1, description="0.2: halt 20 % below peak.")
    daily_loss: float | None = Field(default=None, gt=0, lt=1, description="0.05: halt at -5 % today.")
    max_position_fraction: float | None = Field(
        default=None, gt=0, le=1, description="Cap a buy so one coin is at most this share of equity."
    )
    max_orders_per_bar: int | None = Field(default=None, ge=0, description="Orders past this are cut.")
    max_notional_per_order: float | None = Field(default=None, gt=0, description="USD cap of one buy.")
    on_breach: Literal["halt", "flatten"] = Field(
        default="halt", description="halt: no new buys, sells allowed; flatten: sell everything, then halt."
    )


NO_LIMITS = RiskLimits()


class RiskSection(RiskLimits):
    """``[risk]``: every model's default limits, and the account's own floor."""

    min_account_equity: float | None = Field(
        default=None, ge=0, description="USD; below it every model halts (the account as a whole)."
    )

    def for_model(self, overrides: RiskLimits | None) -> RiskLimits:
        """These defaults with a model's own keys on top (only the keys its table sets)."""
        base = self.model_dump(exclude={"min_account_equity"})
        if overrides is not None:
            base.update(overrides.model_dump(include=overrides.model_fields_set))
        return RiskLimits(**base)


class ModelSection(_Section):
    """``[model]``: the one model of a tournament of one."""

    dir: Path = Field(description="Trial folder holding actor.pth (and cappuccino_manifest.json).")
    tickers: list[str] | None = Field(default=None, description="Optional; the model's order wins.")
    profile: ProfileName | None = Field(default=None, description="Env profile; None: the model's own.")
    capital: float | None = Field(
        default=None, gt=0, description="Virtual sub-account USD; None: the profile's initial capital."
    )
    risk: RiskLimits | None = Field(default=None, description="This model's own limits over [risk].")


class TournamentEntry(ModelSection):
    """One ``[[models]]`` table: a model and the USD of the account its virtual sub-account gets."""

    name: str | None = Field(default=None, description="Unique; default: the folder name.")
    capital: float = Field(gt=0, description="USD of the account this model's sub-account gets.")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the tournament, ``[model]`` and ``[[models]]`` alike (``DaemonSettings.models_list``).

    ``capital`` is None only for a ``[model]`` without one: the model's profile capital, as before.
    """

    name: str
    dir: Path
    capital: float | None = None
    tickers: tuple[str, ...] | None = None
    profile: str | None = None
    risk: RiskLimits = NO_LIMITS  # [risk] with the model's own overrides applied


def _entry(section: ModelSection, name: str | None, risk: RiskSection) -> ModelEntry:
    return ModelEntry(
        name=name or Path(section.dir).name or str(section.dir),  # as _resolved_entry names it
        dir=Path(section.dir),
        capital=section.capital,
        tickers=tuple(section.tickers) if section.tickers else None,
        profile=section.profile,
        risk=risk.for_model(section.risk),
    )


def check_model_names(entries: Sequence[ModelEntry]) -> None:
    """Names are file names, labels and order-id prefixes: well formed and unique (case-insensitively)."""
    for e in entries:
        if not MODEL_NAME_RE.match(e.name):
            raise ValueError(
                f"the model name {e.name!r} (dir {str(e.dir)!r}) cannot be used: a name becomes the model's "
                "journal file name and client_order_id prefix, so it is 1-48 letters, digits, '_', '.' or "
                "'-', starting with a letter or digit. Set name = \"...\" in its [[models]] table"
            )
    seen: dict[str, ModelEntry] = {}
    for e in entries:
        other = seen.setdefault(e.name.casefold(), e)
        if other is not e:
            raise ValueError(
                f"two [[models]] are named {e.name!r} (dirs {str(other.dir)!r} and {str(e.dir)!r}); "
                "each model has its own journal, order-id prefix and leaderboard row, so names must be "
                'unique (case is ignored). Give one of them a distinct name = "..." (the default name is '
                "the folder name)"
            )


def check_capital_fits(entries: Sequence[ModelEntry], cash: float, where: Path | str | None = None) -> None:
    """The models' capitals must fit the account's cash at start; a ConfigError names the shortfall.

    Called by whoever holds the broker's account (the worker, before anything trades). Entries without
    a capital (a ``[model]`` without one keeps its profile's capital, as before) are not counted.
    """
    counted = [e for e in entries if e.capital is not None]
    total = sum(e.capital for e in counted if e.capital is not None)
    if total <= cash + 1e-9:
        return
    label = where or "the configuration"
    parts = ", ".join(f"{e.name} {e.capital:,.2f}" for e in counted)
    raise ConfigError(
        f"{label}: the models' capitals add up to {total:,.2f} USD ({parts}) but the broker account has "
        f"only {cash:,.2f} USD of cash, {total - cash:,.2f} USD short. Lower the capital of some [[models]] "
        "(or remove models) so the sum fits the account's cash, or fund the account (the emulator: "
        "`cappuccino-paper emulator --cash`)."
    )


class WorkerSection(_Section):
    poll_interval_s: float = Field(default=60.0, gt=0, description="Fallback polling period.")
    history_hours: int = Field(default=500, gt=0, description="Bars of indicator history (>= 300).")
    bar_close_grace_s: float = Field(default=5.0, ge=0, description="Wait after a bar closes.")
    max_clock_skew_s: float = Field(default=30.0, gt=0, description="Local vs broker clock limit.")
    gap_wait_s: float = Field(
        default=300.0, gt=0, description="How long (broker time) to wait for a late bar before skipping it."
    )
    fill_timeout_s: float = Field(default=30.0, gt=0, description="Bounded wait for sells to fill.")
    http_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of every broker call.")
    request_budget_per_min: int = Field(
        default=180, ge=0, description="Own trading-API request budget, below Alpaca's 200/min; 0 = off."
    )
    position_wait_s: float = Field(
        default=10.0, ge=0, description="Bounded wait for a broker position to catch up with its fills."
    )
    parity_check_every: int = Field(
        default=1,
        ge=0,
        description="Every N bars per model, recompute the action by the replay path (alarm > 1e-6); 0: off.",
    )
    order_concurrency: int = Field(
        default=8,
        ge=1,
        le=32,
        description="A tournament's models sending orders at once (each model's in turn); 1: one by one.",
    )
    asset_rules_max_age_s: float = Field(
        default=86400.0, gt=0, description="Reload the asset rules (order size/steps) at least this often."
    )
    heartbeat_file: Path | None = Field(
        default=None, description="Default <paths.state>/heartbeat.json; `run` sets the file it watches."
    )
    exchange_ready_file: Path | None = Field(
        default=None,
        description="Set by `run` for the embedded emulator: wait for this file before the first request.",
    )


class BrokerSection(_Section):
    kind: Literal["emulator", "alpaca-paper"] = "emulator"
    url: str | None = Field(default=None, description="Trading API base; default per kind.")
    data_url: str | None = Field(default=None, description="Market-data API base; default per kind.")


class EmulatorSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    speed: float = Field(default=1.0, ge=0, description="Simulated seconds per wall second.")
    start: datetime | None = Field(default=None, description="Simulated start (UTC); default: now.")
    synthetic_seed: int = Field(
        default=DEFAULT_SYNTHETIC_SEED, description="Synthetic market seed (when no bars_dir)."
    )
    bars_dir: Path | None = None
    state_file: Path | None = Field(
        default=None, description="Account/orders/clock SQLite; default <paths.state>/emulator.sqlite."
    )
    persist: bool = Field(default=True, description="False: the embedded exchange forgets on restart.")
    # Strict Alpaca behaviours (see `cappuccino-paper emulator --help`); None = the profile's value.
    profile: Literal["lenient", "strict"] | None = Field(default=None, description="None: the CLI default.")
    lenient: bool = Field(default=False, description="Force every strict behaviour off.")
    rate_limit: int | None = Field(default=None, ge=0, description="Trading requests/min per key; 0 off.")
    partial_fill_rate: float | None = Field(default=None, ge=0, le=1, description="Share filled in parts.")
    position_lag_s: float | None = Field(default=None, ge=0, description="Positions trail fills (sim s).")
    assets: Path | None = Field(default=None, description="Asset rules JSON (order size/price steps).")

    ready_file: Path | None = Field(
        default=None, description="Written with the base URL once serving; `run` sets the file it watches."
    )


class SupervisorSection(_Section):
    backoff_base_s: float = Field(default=5.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    healthy_after_s: float = Field(default=60.0, gt=0)
    heartbeat_timeout_s: float = Field(default=300.0, gt=0, description="Stale heartbeat = hung worker.")
    stop_timeout_s: float = Field(default=30.0, gt=0, description="SIGTERM→SIGKILL grace for children.")
    emulator_ready_timeout_s: float = Field(default=60.0, gt=0, description="Embedded emulator start limit.")

    @model_validator(mode="after")
    def _backoff_cap_not_below_base(self) -> SupervisorSection:
        """Here, not in the supervisor, so `validate` refuses exactly what `run` would."""
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) is below backoff_base_s ({self.backoff_base_s}); the "
                "first restart delay would exceed the cap. Set backoff_max_s >= backoff_base_s"
            )
        return self


class PathsSection(_Section):
    root: Path | None = Field(default=None, description="Base for relative paths (see module doc).")
    state: Path = Path("state")
    logs: Path = Path("logs")
    locks: Path | None = Field(
        default=None, description="One-trader-per-account locks; None: host default (accountlock.py)."
    )


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_output: bool | None = Field(default=None, alias="json", description="None: JSON unless a TTY.")
    file: bool = Field(default=False, description="Also write rotating JSON logs to paths.logs.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class MetricsSection(_Section):
    """Prometheus endpoint served by the worker; off by default, loopback only (no auth on it)."""

    enabled: bool = False
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535, description="0: any free port (tests).")


class NotifySection(_Section):
    """``[notify]``: how alerts are sent. The URLs themselves come from the environment or a systemd
    credential (alerts/urls.py), never from here."""

    enabled: bool = Field(default=True, description="False: send nothing even when URLs are set.")
    timeout_s: float = Field(default=10.0, gt=0, description="Per send; a slow notifier never holds trading.")
    max_per_minute: int = Field(default=6, ge=1, description="More are dropped and counted in the next one.")
    repeat_after_s: float = Field(default=3600.0, ge=0, description="The same alert again only after this.")
    restart_alert_after: int = Field(default=3, ge=1, description="Worker restarts in a row before alerting.")
    broker_unreachable_after_s: float = Field(
        default=600.0, gt=0, description="Alert when the broker has been unreachable this long."
    )
    daily_summary: bool = Field(default=True, description="One message per model at each new UTC day.")


class DaemonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    model: ModelSection | None = None
    models: list[TournamentEntry] | None = None
    worker: WorkerSection = WorkerSection()
    broker: BrokerSection = BrokerSection()
    emulator: EmulatorSection = EmulatorSection()
    supervisor: SupervisorSection = SupervisorSection()
    paths: PathsSection = PathsSection()
    logging: LoggingSection = LoggingSection()
    metrics: MetricsSection = MetricsSection()
    risk: RiskSection = RiskSection()
    notify: NotifySection = NotifySection()
    source_file: Path | None = None
    file_data: ClassVar[dict[str, Any] | None] = None  # the parsed TOML (see ``_from_file``)

    @model_validator(mode="after")
    def _one_model_table_kind(self) -> DaemonSettings:
        """``[model]`` (a tournament of one) or ``[[models]]``, never both, never neither."""
        if self.model is not None and self.models is not None:
            raise ValueError(
                "both [model] and [[models]] are set; a file names its models one way. Keep [model] for "
                "one model, or move it into a [[models]] table (with a capital) and delete [model]"
            )
        if self.model is None and not self.models:
            raise ValueError(
                "missing required key 'model': the file names no model. Add a [model] table with dir = "
                '"<trial folder>", or one [[models]] table (dir, capital) per model of a tournament'
            )
        if self.models is not None:  # a [model]'s derived name is only a label
            check_model_names(self.models_list)
        return self

    @property
    def models_list(self) -> tuple[ModelEntry, ...]:
        """Every model of the tournament in file order; a ``[model]`` is a tournament of one."""
        if self.models is not None:
            return tuple(_entry(m, m.name, self.risk) for m in self.models)
        return (_entry(self.model, None, self.risk),) if self.model is not None else ()

    def only_model(self) -> ModelEntry:
        """The model of a tournament of one; a ConfigError for commands that serve one model only."""
        entries = self.models_list
        if len(entries) != 1:
            where = self.source_file or "the configuration"
            raise ConfigError(
                f"{where} names {len(entries)} models ({', '.join(e.name for e in entries)}) but this "
                "command serves one model. Pass --model-dir DIR to pick one, or use a config with a single "
                "[model] or [[models]] table."
            )
        return entries[0]

    @model_validator(mode="after")
    def _embedded_emulator_needs_a_fixed_port(self) -> DaemonSettings:
        """The supervisor tells the worker the emulator's port before starting it, so 0 cannot work."""
        if self.broker.kind == "emulator" and self.emulator.port == 0:
            raise ValueError(
                '[emulator] port = 0 (any free port) cannot be used with [broker] kind = "emulator", because '
                "the worker must be told the port in advance. Set a fixed port such as 8765"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (pydantic-settings passes it by name)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_data = getattr(settings_cls, "file_data", None)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if file_data:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=file_data))
        return tuple(sources)


def project_root_for(config_file: Path) -> Path:
    folder = config_file.resolve().parent
    return folder.parent if folder.name == "config" else folder


def _resolve(root: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(os.path.expanduser(path))
    return path if path.is_absolute() else (root / path).resolve()


def _systemd_dir(variable: str) -> Path | None:
    """systemd's StateDirectory=/LogsDirectory= win over the TOML (first entry of a colon list)."""
    value = os.environ.get(variable, "")
    return Path(value.split(":")[0]) if value else None


def _find_secrets(data: Any, trail: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{trail}.{key}" if trail else str(key)
            if str(key).lower() in SECRET_KEYS:
                found.append(where)
            found.extend(_find_secrets(value, where))
    return found


def _env_source(loc: tuple[Any, ...]) -> str | None:
    """The environment variable that set the value at ``loc``, if one did (names are case-insensitive)."""
    set_names = {name.upper(): name for name in os.environ if name.upper().startswith(ENV_PREFIX)}
    parts = [str(part).upper() for part in loc]
    for depth in range(len(parts), 0, -1):
        candidate = ENV_PREFIX + "__".join(parts[:depth])
        if candidate in set_names:
            return set_names[candidate]
    return None


def _key_label(loc: tuple[Any, ...]) -> str:
    """``models.1.capital`` reads as ``models[2].capital`` (the second [[models]] table, counting from 1)."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        rest = "".join(f".{part}" for part in loc[2:])
        return f"models[{loc[1] + 1}]{rest} (the [[models]] table number {loc[1] + 1})"
    return ".".join(str(part) for part in loc)


def _describe_error(err: Any) -> str:
    key = _key_label(tuple(err["loc"]))
    if err["type"] == "extra_forbidden":
        text = f"unknown key '{key}' (remove it or check its spelling and section)"
    elif err["type"] == "missing":
        text = f"missing required key '{key}'"
    elif err["type"] == "value_error":  # a rule (validator): the message says it all
        rule = str(err["msg"]).removeprefix("Value error, ")
        text = rule if not key else (f"[{key}] {rule}" if "." not in key else f"'{key}': {rule}")
    else:
        text = f"'{key}': {err['msg']} (got {err.get('input')!r})"
    variable = _env_source(tuple(err["loc"]))
    return f"{text} [set by the environment variable {variable}]" if variable else text


def _format_validation_error(config_file: Path, exc: ValidationError) -> str:
    problems = [_describe_error(err) for err in exc.errors()]
    env_hint = (
        f" A value may also come from an environment variable {ENV_PREFIX}<SECTION>__<KEY>; "
        f"check `env | grep "
        f"{ENV_PREFIX}`."
        if any(k.upper().startswith(ENV_PREFIX) for k in os.environ)
        else ""
    )
    return (
        f"Invalid configuration in {config_file}: " + "; ".join(problems) + ". Edit the file and run "
        f"`cappuccino-paper validate --config {config_file}` to check it.{env_hint}"
    )


def _format_settings_error(config_file: Path, exc: SettingsError) -> str:
    """pydantic-settings could not decode an environment value (e.g. ``CAPPUCCINO_WORKER=junk``)."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else None
    variable = _env_source((field,)) if field else None
    if variable is None or field is None:
        return (
            f"Cannot read the configuration ({config_file} plus {ENV_PREFIX}* environment variables): {exc}. "
            f"Check `env | grep {ENV_PREFIX}` and unset or fix the variable."
        )
    return (
        f"The environment variable {variable}={os.environ[variable]!r} names the whole [{field}] section of "
        f"{config_file}, so it must be a JSON object, and it is not. Set one key at a time instead, e.g. "
        f"{ENV_PREFIX}{field.upper()}__<KEY>=value, or remove it with `unset {variable}`."
    )


def _missing_config_message(config_file: Path) -> str:
    if config_file.is_symlink() and not config_file.exists():
        return (
            f"Configuration file {config_file} is a symbolic link to {os.readlink(config_file)}, which does "
            "not exist. Fix the link, or pass --config PATH to an existing file."
        )
    if config_file.exists():
        kind = "a directory" if config_file.is_dir() else "not a regular file"
        inside = [
            p for p in (config_file / "daemon.toml", config_file / "config" / "daemon.toml") if p.is_file()
        ]
        hint = f"pass --config {inside[0]}" if inside else "pass --config with the path of a TOML file"
        return f"Configuration path {config_file} is {kind}, not a TOML file. Fix: {hint}."
    if config_file.name == "daemon.toml" and config_file.parent.name == "config":
        folder = config_file.parent.parent
        init = "cappuccino-paper init" + ("" if str(folder) == "." else f" {folder}")
        create = f"Create the commented default (plus state/ and logs/) with `{init}`"
    else:
        create = (
            "Create the commented default with `cappuccino-paper init` (writes config/daemon.toml, state/ "
            f"and logs/ here) and copy config/daemon.toml to {config_file}"
        )
    return (
        f"Configuration file {config_file} does not exist. {create}, or pass --config PATH to use an "
        "existing file."
    )


# Keys older versions accepted. A harmless one is ignored with a warning so an existing file still
# loads; one that changed what runs is refused, since ignoring it would silently run something else.
RETIRED_KEYS: dict[tuple[str, str], str | None] = {
    ("supervisor", "validate_timeout_s"): None,
    **{
        ("supervisor", key): (
            "the test hooks worker_command/validate_command/emulator_command were removed: `run` always "
            "starts `cappuccino-paper worker --config FILE` (and `emulator --config FILE`), and the worker "
            "checks the model itself before trading. Remove the key; to run your own program, run it "
            "yourself instead of `cappuccino-paper run`"
        )
        for key in ("worker_command", "validate_command", "emulator_command")
    },
}


def _retire_keys(config_file: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without the retired keys: harmless ones warn on stderr, the others are a ConfigError."""
    cleaned = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for (section, key), refusal in RETIRED_KEYS.items():
        table = cleaned.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        if refusal is not None:
            raise ConfigError(f"{config_file}: [{section}] {key} is no longer supported; {refusal}.")
        del table[key]
        print(
            f"cappuccino-paper: warning: {config_file}: [{section}] {key} is no longer used and is ignored "
            "(the separate validation process it limited is gone: the worker checks the model itself). "
            "Remove the line.",
            file=sys.stderr,
        )
    return cleaned


def _read_toml(config_file: Path) -> dict[str, Any]:
    if not config_file.is_file():
        raise ConfigError(_missing_config_message(config_file))
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the configuration file {config_file}: {exc.strerror or exc}. Fix: make it readable "
            f"by this user (e.g. `chmod 644 {config_file}`) or pass --config PATH."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Cannot parse {config_file} as TOML: it is not UTF-8 text ({exc}). Save it as UTF-8."
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Cannot parse {config_file} as TOML: {exc}. Fix the syntax at that line.") from exc
    notify = raw.get("notify")
    if isinstance(notify, dict) and "urls" in notify:
        raise ConfigError(
            f"{config_file}: [notify] urls is set, but notification URLs hold tokens and never go in the "
            "TOML. Remove the key and put the URLs in the environment variable CAPPUCCINO_NOTIFY_URLS "
            "(space-separated), or in a systemd credential (LoadCredential=notify_urls:/etc/cappuccino-paper/"
            "notify_urls, one URL per line)."
        )
    secrets = _find_secrets(raw)
    if secrets:
        raise ConfigError(
            f"{config_file} contains credentials ({', '.join(secrets)}). Alpaca keys never go in the TOML: "
            "remove them and set ALPACA_API_KEY and ALPACA_API_SECRET in the environment, or use a "
            "systemd credential (LoadCredential=alpaca_api_key / alpaca_api_secret)."
        )
    return _retire_keys(config_file, raw)


def _build(label: Path, file_data: dict[str, Any] | None, **init: Any) -> DaemonSettings:
    """Defaults < ``file_data`` < environment < ``init``; any problem is one ConfigError paragraph."""
    settings_cls = type("FileDaemonSettings", (DaemonSettings,), {"file_data": file_data})
    try:
        settings: DaemonSettings = settings_cls(**init)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(label, exc)) from None
    except SettingsError as exc:
        raise ConfigError(_format_settings_error(label, exc)) from None
    return settings


def _resolved_entry(root: Path, entry: TournamentEntry) -> TournamentEntry:
    """The name is fixed from the dir as written, before a symlink (``demo/best_model``) is followed."""
    name = entry.name or Path(entry.dir).name or str(entry.dir)
    return entry.model_copy(update={"dir": _resolve(root, entry.dir), "name": name})


def _resolve_paths(settings: DaemonSettings, config_file: Path) -> DaemonSettings:
    """Relative paths → absolute (see the module doc); systemd's directories win for state and logs."""
    root = settings.paths.root or project_root_for(config_file)
    root = _resolve(project_root_for(config_file), root) or root
    state_dir = _systemd_dir("STATE_DIRECTORY") or _resolve(root, settings.paths.state)
    assert state_dir is not None
    emu, worker = settings.emulator, settings.worker
    default_emu_state = StateLayout(state_dir).emulator_state if emu.persist else None
    logs = _systemd_dir("LOGS_DIRECTORY") or _resolve(root, settings.paths.logs)
    return settings.model_copy(
        update={
            "model": settings.model
            and settings.model.model_copy(update={"dir": _resolve(root, settings.model.dir)}),
            "models": settings.models and [_resolved_entry(root, m) for m in settings.models],
            "paths": settings.paths.model_copy(
                update={
                    "root": root,
                    "state": state_dir,
                    "logs": logs,
                    "locks": _resolve(root, settings.paths.locks),
                }
            ),
            "worker": worker.model_copy(
                update={
                    "heartbeat_file": _resolve(root, worker.heartbeat_file),
                    "exchange_ready_file": _resolve(root, worker.exchange_ready_file),
                }
            ),
            "emulator": emu.model_copy(
                update={
                    "bars_dir": _resolve(root, emu.bars_dir),
                    "state_file": _resolve(root, emu.state_file) or default_emu_state,
                    "ready_file": _resolve(root, emu.ready_file),
                    "assets": _resolve(root, emu.assets),
                }
            ),
        }
    )


def load_settings(path: Path | None = None, *, require_model_dir: bool = True) -> DaemonSettings:
    """Read, validate and resolve the daemon configuration; any problem is a ``ConfigError``."""
    config_file = Path(path) if path is not None else DEFAULT_CONFIG
    raw = _read_toml(config_file)
    settings = _build(config_file, raw, source_file=config_file.resolve())
    resolved = _resolve_paths(settings, config_file)
    if require_model_dir:
        for given, entry in zip(settings.models_list, resolved.models_list, strict=True):
            if not entry.dir.is_dir():
                table = "[model]" if settings.model is not None else f"[[models]] {entry.name!r}"
                raise ConfigError(
                    f"{config_file}: {table} dir = {str(given.dir)!r} resolves to {entry.dir}, which does "
                    "not exist. Set it to a trial folder containing actor.pth (list trials with "
                    "`cappuccino-paper trials --db databases/optuna_cappuccino.db`), or create the demo "
                    "model with `cappuccino-paper demo`."
                )
    return resolved


def settings_without_file(model_dir: Path | None = None) -> DaemonSettings:
    """The defaults plus ``CAPPUCCINO_*`` environment overrides, for a command run without ``--config``.

    ``model_dir`` stands in for ``[model] dir`` (the current folder when the command serves no model).
    Paths stay as given (relative to the current folder); nothing is resolved against a project root.
    """
    label = Path("(defaults; no --config file)")
    return _build(label, None, model={"dir": model_dir if model_dir is not None else Path(".")})


def setting_type(section: type[BaseModel], key: str) -> Callable[[str], Any]:
    """argparse ``type=`` checking a flag by the rules of ``[section] key`` (exit 2 naming the flag)."""

    def parse(text: str) -> Any:
        try:
            return getattr(section.model_validate({key: text}), key)
        except ValidationError as exc:
            err = next((e for e in exc.errors() if e["loc"][:1] == (key,)), exc.errors()[0])
            rule = str(err["msg"]).removeprefix("Value error, ")
            where = f"[{section.__name__.removesuffix('Section').lower()}] {key}"
            raise argparse.ArgumentTypeError(f"{text!r}: {rule} (the rule of the setting {where})") from None

    return parse


def apply_overrides(
    settings: DaemonSettings, overrides: Mapping[tuple[str, str], tuple[str, Any]]
) -> DaemonSettings:
    """``settings`` with ``{(section, key): (flag, value)}`` applied; a ``None`` value is no override.

    Each touched section is validated again with the override in place, so a flag obeys the rules of
    the TOML key it replaces; a refusal names the flag and the key.
    """
    update: dict[str, dict[str, Any]] = {}
    for (section, key), (_flag, value) in overrides.items():
        if value is not None:
            update.setdefault(section, {})[key] = value
    sections: dict[str, BaseModel] = {}
    # --model-dir over a [[models]] tournament: serve that one model as a [model].
    if "model" in update and settings.model is None and "dir" not in update["model"]:
        raise ConfigError(
            "--tickers cannot apply to a [[models]] tournament: each model has its own tickers. Set them in "
            "its [[models]] table, or pass --model-dir DIR too to serve that one model."
        )
    sections_none: dict[str, Any] = {"models": None} if "model" in update else {}
    for section, values in update.items():
        current: BaseModel = getattr(settings, section) or ModelSection(dir=Path("."))
        try:
            sections[section] = type(current).model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            flags = [flag for (sec, key), (flag, v) in overrides.items() if sec == section and v is not None]
            problems = "; ".join(_describe_error(err) for err in exc.errors())
            raise ConfigError(
                f"Invalid command-line override ({', '.join(flags)}) of [{section}]: {problems}. Fix the "
                f"flag value, or drop the flag to use the configured one."
            ) from None
    return settings.model_copy(update={**sections, **sections_none})


@dataclass(frozen=True)
class AlpacaCredentials:
    key_id: str
    secret_key: str

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"AlpacaCredentials(key_id={self.key_id[:4]}…, secret_key=***)"


def load_alpaca_credentials(environ: dict[str, str] | None = None) -> AlpacaCredentials | None:
    """Keys from ``ALPACA_API_KEY``/``ALPACA_API_SECRET`` or systemd ``$CREDENTIALS_DIRECTORY`` files."""
    env = os.environ if environ is None else environ
    key, secret = env.get("ALPACA_API_KEY"), env.get("ALPACA_API_SECRET")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if (not key or not secret) and cred_dir:
        folder = Path(cred_dir)
        try:
            key = key or (folder / "alpaca_api_key").read_text(encoding="utf-8").strip()
            secret = secret or (folder / "alpaca_api_secret").read_text(encoding="utf-8").strip()
        except OSError:
            pass
    if key and secret:
        from cappuccino_daemon.logsetup import register_secret

        register_secret(key)
        register_secret(secret)
        return AlpacaCredentials(key_id=key, secret_key=secret)
    return None
