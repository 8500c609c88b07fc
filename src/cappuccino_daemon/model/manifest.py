"""``cappuccino_manifest.json``: our own, versioned, pickle-free description of a trial folder.

It pins everything the worker needs that the tensors cannot say (tickers in state order, timeframe,
features, normalisation values, action normaliser, env profile) and the sha256 of the ``actor.pth``
it describes, so a manifest copied next to other weights is refused instead of silently trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cappuccino_daemon.atomic import atomic_write_text
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.checkpoint import ACTOR_FILE, sha256_file

MANIFEST_FILE = "cappuccino_manifest.json"
MANIFEST_FORMAT = "cappuccino-manifest/1"
# FinRL_Crypto in-memory studies stored whole training arrays in user_attrs; never copy those.
HEAVY_USER_ATTRS = frozenset({"price_array", "tech_array", "time_array", "drl_rets_val_list", "paths"})
MAX_ATTR_ITEMS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestSource(_Strict):
    study: str | None = None
    number: int | None = None
    trial_id: int | None = None
    origin: str = Field(default="optuna-db", description="optuna-db | best_trial | manual")
    db: str | None = None
    value: float | None = None


class ManifestArchitecture(_Strict):
    algorithm: Literal["ppo"] = "ppo"
    state_dim: int
    net_dim: int
    action_dim: int
    n_hidden_layers: int


class ManifestNormalisation(_Strict):
    cash: float
    stocks: float
    tech: float
    reward: float
    action: float


class ManifestProfile(_Strict):
    name: str
    initial_capital: float
    buy_cost_pct: float
    sell_cost_pct: float
    safety_factor: float
    min_cash_reserve: float
    minimum_qty: list[float]
    forced_sell_cooldown_steps: int = 48
    forced_sell_fraction: float = 0.05


class Manifest(_Strict):
    format: Literal["cappuccino-manifest/1"] = "cappuccino-manifest/1"
    created_utc: str
    source: ManifestSource
    architecture: ManifestArchitecture
    tickers: list[str] = Field(description="State order (bare bases such as BTC).")
    timeframe: str
    lookback: int
    features: list[str]
    normalisation: ManifestNormalisation
    action_normaliser: str = "order-of-magnitude"
    env_profile: ManifestProfile
    params: dict[str, Any] = Field(default_factory=dict)
    user_attrs: dict[str, Any] = Field(default_factory=dict)
    actor_sha256: str | None = Field(default=None, description="sha256 of actor.pth; None = not pinned.")
    notes: list[str] = Field(default_factory=list)


def slim_user_attrs(attrs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop training arrays and huge lists; return the kept attrs and the dropped keys."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in attrs.items():
        if key in HEAVY_USER_ATTRS or (isinstance(value, list | dict) and len(value) > MAX_ATTR_ITEMS):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped


def _regen_hint(model_dir: Path) -> str:
    return (
        f"Fix: regenerate it with `cappuccino-paper trial-metadata --study STUDY --number N --output-dir "
        f"{model_dir} --db databases/optuna_cappuccino.db` (find STUDY and N with `cappuccino-paper trials "
        "--db databases/optuna_cappuccino.db`), or delete it to fall back to best_trial."
    )


def read_manifest(model_dir: Path, *, verify_sha: bool = True) -> Manifest | None:
    """The folder's manifest, or None when there is none. Invalid or stale manifests are refused."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}). {_regen_hint(model_dir)}") from None
    if isinstance(raw, dict) and raw.get("format") != MANIFEST_FORMAT:
        raise ConfigError(
            f"{path} has format {raw.get('format')!r}; this version reads {MANIFEST_FORMAT!r}. "
            f"{_regen_hint(model_dir)}"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ConfigError(
            f"{path} does not match {MANIFEST_FORMAT}: {problems}. {_regen_hint(model_dir)}"
        ) from None
    actor = model_dir / ACTOR_FILE
    if verify_sha and manifest.actor_sha256 and actor.is_file():
        actual = sha256_file(actor)
        if actual != manifest.actor_sha256:
            raise ConfigError(
                f"{path} was written for another actor.pth: it pins sha256 {manifest.actor_sha256[:16]}… but "
                f"{actor} has {actual[:16]}…. The weights changed after the metadata was written, so the "
                f"params may not describe them. Fix: re-run `cappuccino-paper trial-metadata --study "
                f"{manifest.source.study or 'STUDY'} --number "
                f"{manifest.source.number if manifest.source.number is not None else 'N'} --output-dir "
                f"{model_dir}` for these weights."
            )
    return manifest


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Write atomically (a crash leaves the old manifest or the new one)."""
    path = Path(model_dir) / MANIFEST_FILE
    atomic_write_text(path, json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
    return path
