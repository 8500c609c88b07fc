"""Turn a trial folder into a ``ModelSpec``: tensor shapes first, then manifest, then ``best_trial``.

Precedence: the checkpoint's shapes are the truth (state_dim, net_dim, n_tickers, lookback); the
manifest is our pinned metadata and must agree with them exactly; a legacy ``best_trial`` may
disagree (trial_3358_1h), which becomes a warning in ``spec.warnings`` and the log. No metadata at all
is a refusal naming the exact ``trial-metadata`` command to run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.checkpoint import CheckpointInfo, lookback_or_refuse, read_checkpoint
from cappuccino_daemon.model.manifest import MANIFEST_FILE, Manifest, read_manifest
from cappuccino_daemon.model.spec import (
    DEFAULT_TRAINING_TICKERS,
    FEATURES_11,
    EnvProfile,
    ModelSpec,
    Normalisation,
    TrialSource,
)
from cappuccino_daemon.model.trial_pickle import read_best_trial

log = get_logger(__name__)


class UnknownTickersError(ConfigError):
    """A legacy model whose tickers nobody recorded (``inspect`` describes it anyway)."""


BEST_TRIAL_FILE = "best_trial"
DEFAULT_TIMEFRAME = "1h"
_FOLDER_TF = re.compile(r"_(\d+(?:m|h|d|min))$", re.IGNORECASE)
_FOLDER_NUMBER = re.compile(r"trial_(\d+)")


def normalise_ticker(symbol: str) -> str:
    """ "btc/usd", "BTCUSD", "BTC-USDT" -> "BTC" (the state uses bare bases)."""
    s = symbol.strip().upper()
    for sep in ("/", "-"):
        if sep in s:
            s = s.split(sep, 1)[0]
    for quote in ("USDT", "USDC", "USD"):
        if s.endswith(quote) and len(s) > len(quote):
            s = s[: -len(quote)]
            break
    return s


def decode_norms(params: Mapping[str, Any], where: str) -> tuple[Normalisation, list[str]]:
    """Cappuccino exponents (``norm_cash_exp`` -> 2**exp) or FinRL_Crypto values (``norm_cash``)."""
    notes: list[str] = []
    values: dict[str, float] = {}
    for name in ("cash", "stocks", "tech", "reward"):
        exp_key, val_key = f"norm_{name}_exp", f"norm_{name}"
        if exp_key in params:
            values[name] = 2.0 ** float(params[exp_key])
        elif val_key in params:
            raw = float(params[val_key])
            if raw < 0:  # an exponent stored under the value name: never compute 2 ** 2**-12
                values[name] = 2.0**raw
                notes.append(f"{val_key}={raw} is negative, read as an exponent (2**{raw})")
            else:
                values[name] = raw
        else:
            raise ConfigError(
                f"{where}: the trial params have neither {exp_key} nor {val_key}, so the state scaling is "
                "unknown (it cannot be recovered from the weights). Fix: write a manifest with the training "
                "values: `cappuccino-paper trial-metadata ...` for the trial that produced these weights."
            )
    if "norm_action" not in params:
        raise ConfigError(
            f"{where}: the trial params lack norm_action, so orders cannot be sized. Fix: write a manifest "
            "with `cappuccino-paper trial-metadata ...` for the trial that produced these weights."
        )
    return Normalisation(action=float(params["norm_action"]), **values), notes


def _find_db_near(model_dir: Path) -> Path | None:
    """``databases/optuna_cappuccino.db`` beside the ``train_results`` tree, if any."""
    for parent in [model_dir, *model_dir.resolve().parents][:5]:
        cand = parent / "databases" / "optuna_cappuccino.db"
        if cand.is_file():
            return cand
    return None


def ticker_placeholders(n: int) -> str:
    """``T1,T2,...,Tn``: an example with the right number of symbols that cannot be pasted by mistake."""
    return ",".join(f"T{i}" for i in range(1, n + 1))


def missing_metadata_command(model_dir: Path, n_tickers: int | None = None) -> str:
    """The exact command that writes the manifest for this folder."""
    if (model_dir / BEST_TRIAL_FILE).is_file():
        if n_tickers == len(DEFAULT_TRAINING_TICKERS):
            extra = ""
        else:
            extra = f" --tickers {ticker_placeholders(n_tickers) if n_tickers else 'T1,T2,...'}"
        return f"cappuccino-paper trial-metadata --from-best-trial --output-dir {model_dir}{extra}"
    m = _FOLDER_NUMBER.search(model_dir.name)
    number = m.group(1) if m else "N"
    db = _find_db_near(model_dir)
    db_arg = str(db) if db else "databases/optuna_cappuccino.db"
    return f"cappuccino-paper trial-metadata --trial-id {number} --output-dir {model_dir} --db {db_arg}"


def recorded_tickers(
    user_attrs: Mapping[str, Any], where: str, folder: Path | str = "FOLDER"
) -> tuple[str, ...] | None:
    """FinRL_Crypto's ``user_attrs["ticker_list"]`` normalised (``BTCUSDT`` -> ``BTC``), stored order kept.

    The stored order is the column order of the training arrays, so it is never sorted. None when the
    trial records no tickers (Cappuccino trials never do).
    """
    raw = user_attrs.get("ticker_list")
    if raw is None:
        return None
    pin = (
        f"`cappuccino-paper trial-metadata --from-best-trial --output-dir {folder} --tickers T1,T2,... "
        "--force` (training order)"
    )
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) and t.strip() for t in raw):
        raise ConfigError(
            f"{where}: user_attrs.ticker_list is {str(raw)[:80]!r}, not a list of symbols, so the tickers "
            f"the model was trained on are unknown. Fix: pin them with {pin}."
        )
    tickers = tuple(normalise_ticker(t) for t in raw)
    if len(set(tickers)) != len(tickers):
        raise ConfigError(
            f"{where}: user_attrs.ticker_list {', '.join(raw)} names a ticker twice after normalisation "
            f"({', '.join(tickers)}); the state has one slot per ticker. Fix: pin the real list with {pin}."
        )
    return tickers


def recorded_count_mismatch(where: str, recorded: Sequence[str], n: int, fix: str) -> ConfigError:
    """A ticker_list of the wrong length: the pickle describes another run than these weights."""
    return ConfigError(
        f"{where}: user_attrs.ticker_list names {len(recorded)} tickers ({', '.join(recorded)}) but "
        f"actor.pth has {n} actions (action_dim {n}), one per ticker; the trial record describes another "
        f"run than these weights. Fix: {fix}"
    )


def timeframe_from(model_dir: Path, *candidates: Any) -> tuple[str, list[str]]:
    found = [str(c) for c in candidates if isinstance(c, str) and c]
    m = _FOLDER_TF.search(model_dir.name)
    if m:
        found.append(m.group(1).lower())
    if not found:
        note = "timeframe unknown (no user_attrs.timeframe, no _1h folder suffix)"
        return DEFAULT_TIMEFRAME, [f"{note}; assuming {DEFAULT_TIMEFRAME}"]
    notes = []
    if len(set(found)) > 1:
        notes.append(f"timeframe sources disagree ({', '.join(found)}); using {found[0]}")
    return found[0], notes


def _profile_from_manifest(m: Manifest) -> EnvProfile:
    p = m.env_profile
    return EnvProfile(
        name=p.name,
        initial_capital=p.initial_capital,
        buy_cost_pct=p.buy_cost_pct,
        sell_cost_pct=p.sell_cost_pct,
        safety_factor=p.safety_factor,
        min_cash_reserve=p.min_cash_reserve,
        minimum_qty=tuple(p.minimum_qty),
        forced_sell_cooldown_steps=p.forced_sell_cooldown_steps,
        forced_sell_fraction=p.forced_sell_fraction,
    )


def legacy_profile_name(params: Mapping[str, Any]) -> str:
    """Cappuccino-style params (``norm_*_exp``) -> the Cappuccino profile; value params -> FinRL_Crypto."""
    from cappuccino_daemon.model import profiles

    if any(k.endswith("_exp") for k in params):
        return profiles.DEFAULT_PROFILE_FOR_LEGACY
    return profiles.FINRL_CRYPTO


def _check_manifest(info: CheckpointInfo, m: Manifest, lookback: int, model_dir: Path) -> None:
    a = m.architecture
    problems = []
    for name, got, want in (
        ("state_dim", a.state_dim, info.state_dim),
        ("net_dim", a.net_dim, info.net_dim),
        ("action_dim", a.action_dim, info.action_dim),
        ("number of tickers", len(m.tickers), info.n_tickers),
        ("lookback", m.lookback, lookback),
        ("minimum_qty entries", len(m.env_profile.minimum_qty), info.n_tickers),
    ):
        if got != want:
            problems.append(f"{name} {got} (checkpoint: {want})")
    if len(m.features) * m.lookback * len(m.tickers) + 1 + len(m.tickers) != info.state_dim:
        problems.append(f"{len(m.features)} features do not fit state_dim {info.state_dim}")
    if len(set(m.tickers)) != len(m.tickers):
        problems.append(f"tickers {', '.join(m.tickers)} name a ticker twice")
    numbers = {f"normalisation.{k}": v for k, v in m.normalisation.model_dump().items()}
    numbers["env_profile.initial_capital"] = m.env_profile.initial_capital
    bad = [k for k, v in numbers.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        problems.append(f"{', '.join(bad)} must be positive finite numbers")
    if problems:
        raise ConfigError(
            f"{model_dir / MANIFEST_FILE} does not describe {info.path}: {'; '.join(problems)}. "
            f"Fix: re-run `{missing_metadata_command(model_dir, info.n_tickers)}` for the trial that "
            "produced these weights."
        )


def _resolve_tickers(
    model_tickers: tuple[str, ...] | None,
    requested: Sequence[str] | None,
    n: int,
    model_dir: Path,
    pinned: bool,
) -> tuple[tuple[str, ...], list[str]]:
    """Apply the ticker rules: the model's order wins; wrong sizes fall back; sets are reordered."""
    notes: list[str] = []
    req = tuple(normalise_ticker(t) for t in requested) if requested else None
    if req is not None and len(set(req)) != len(req):
        raise ConfigError(f"Requested tickers {', '.join(req)} contain duplicates. Fix: list each once.")
    if model_tickers is None:  # legacy folder, no known order
        if req is not None and len(req) == n:
            ordered = tuple(sorted(req))
            notes.append(
                f"no manifest: using the requested tickers in alphabetical order {', '.join(ordered)} "
                "(training arrays were built alphabetically); pin them with trial-metadata"
            )
            return ordered, notes
        if req is not None:
            raise ConfigError(
                f"{model_dir}: the model expects {n} tickers (action_dim {n}); {len(req)} were requested "
                f"({', '.join(req)}) and the folder has no manifest saying which {n} it was trained on. Fix: "
                f"pass exactly {n} tickers in training (alphabetical) order, "
                f"or write the manifest with `{missing_metadata_command(model_dir, n)}`."
            )
        raise UnknownTickersError(
            f"{model_dir}: the model trades {n} tickers but neither a manifest nor best_trial's "
            "user_attrs.ticker_list says which ones "
            f"(only 7-ticker legacy models default to {', '.join(DEFAULT_TRAINING_TICKERS)}). Fix: pass "
            f"--tickers with exactly {n} symbols (state order is alphabetical), or write the manifest with "
            f"`{missing_metadata_command(model_dir, n)}` (T1..T{n} = the training symbols in order)."
        )
    if req is None or req == model_tickers:
        return model_tickers, notes
    if len(req) != n:
        notes.append(
            f"model expects {n} tickers; requested {len(req)} ({', '.join(req)}); using the training tickers "
            f"{', '.join(model_tickers)}"
        )
        return model_tickers, notes
    if set(req) == set(model_tickers):
        notes.append(
            f"requested tickers {', '.join(req)} reordered to the model's state order "
            f"{', '.join(model_tickers)}"
        )
        return model_tickers, notes
    if pinned:
        raise ConfigError(
            f"{model_dir}: the model was trained on {', '.join(model_tickers)} (positional state), but "
            f"{', '.join(req)} were requested. A model cannot trade tickers it was not trained on. Fix: "
            f"remove the tickers setting or set it to {','.join(model_tickers)}."
        )
    ordered = tuple(sorted(req))
    notes.append(f"using requested tickers {', '.join(ordered)} instead of the default list (no manifest)")
    return ordered, notes


def _apply_overrides(
    base: EnvProfile, n: int, params: Mapping[str, Any], profile: str | None, capital: float | None
) -> EnvProfile:
    """An explicit ``--profile`` replaces the model's profile; ``--capital`` its initial capital."""
    from cappuccino_daemon.model import profiles

    if profile is not None:
        return profiles.get_profile(profile, n, params, capital=capital)
    if capital is not None:
        if not (math.isfinite(capital) and capital > 0):
            raise ConfigError(
                f"--capital must be a positive number of USD, got {capital}; e.g. --capital 1000."
            )
        return replace(base, initial_capital=float(capital))
    return base


def load_model_spec(
    model_dir: Path,
    requested_tickers: Sequence[str] | None = None,
    *,
    profile: str | None = None,
    capital: float | None = None,
    allow_unknown_tickers: bool = False,
) -> ModelSpec:
    """The full description of the model in ``model_dir``; refuses anything it cannot trust.

    ``profile``/``capital`` are explicit user choices (replay flags): they replace the model's values
    and silence the matching "assuming" warning. ``allow_unknown_tickers`` is for ``inspect`` only: a
    legacy model whose tickers nobody recorded is described (``tickers_known`` False) instead of refused.
    """
    model_dir = Path(model_dir)
    info = read_checkpoint(model_dir)
    lookback = lookback_or_refuse(info)
    manifest = read_manifest(model_dir)
    if manifest is not None:
        spec = _spec_from_manifest(info, manifest, lookback, model_dir, requested_tickers)
        spec = replace(
            spec, profile=_apply_overrides(spec.profile, info.n_tickers, spec.params, profile, capital)
        )
    else:
        spec = _spec_from_best_trial(
            info, lookback, model_dir, requested_tickers, profile, capital, allow_unknown_tickers
        )
    for w in spec.warnings:
        log.warning("model_spec_warning", model_dir=str(model_dir), warning=w)
    return spec


def _spec_from_manifest(
    info: CheckpointInfo,
    manifest: Manifest,
    lookback: int,
    model_dir: Path,
    requested_tickers: Sequence[str] | None,
) -> ModelSpec:
    _check_manifest(info, manifest, lookback, model_dir)
    warnings: list[str] = []
    if manifest.actor_sha256 is None:
        warnings.append("manifest is not pinned to this actor.pth (no sha256); re-run trial-metadata")
    tickers, notes = _resolve_tickers(
        tuple(manifest.tickers), requested_tickers, info.n_tickers, model_dir, pinned=True
    )
    norm = manifest.normalisation
    return ModelSpec(
        model_dir=model_dir,
        algorithm=info.algorithm,
        state_dim=info.state_dim,
        net_dim=info.net_dim,
        action_dim=info.action_dim,
        n_hidden_layers=info.n_hidden_layers,
        tickers=tickers,
        lookback=lookback,
        features=tuple(manifest.features),
        timeframe=manifest.timeframe,
        norms=Normalisation(norm.cash, norm.stocks, norm.tech, norm.reward, norm.action),
        profile=_profile_from_manifest(manifest),
        source=TrialSource(
            manifest.source.study, manifest.source.number, manifest.source.trial_id, "manifest"
        ),
        action_normaliser=manifest.action_normaliser,
        params=dict(manifest.params),
        user_attrs=dict(manifest.user_attrs),
        actor_sha256=info.sha256,
        warnings=tuple(warnings + notes + list(manifest.notes)),
    )


def _params_disagreements(params: Mapping[str, Any], info: CheckpointInfo, lookback: int) -> list[str]:
    warnings = []
    p_net = params.get("net_dimension")
    if p_net is not None and int(p_net) != info.net_dim:
        warnings.append(
            f"best_trial params say net_dimension={p_net} but actor.pth is {info.net_dim} wide: the "
            "params may describe another run (shared trial folder or id/number confusion); tensor "
            "shapes win"
        )
    p_lb = params.get("lookback")
    if p_lb is not None and int(p_lb) != lookback:
        warnings.append(
            f"best_trial params say lookback={p_lb} but the checkpoint's state_dim {info.state_dim} "
            f"implies lookback {lookback}; using {lookback}"
        )
    return warnings


def _legacy_tickers(
    user_attrs: Mapping[str, Any],
    n: int,
    model_dir: Path,
    requested: Sequence[str] | None,
    allow_unknown: bool,
) -> tuple[tuple[str, ...] | None, list[str]]:
    """Tickers of a folder without manifest: ``ticker_list`` > the 7-ticker default > ``requested``.

    None (only with ``allow_unknown``) when nothing says which tickers the model trades.
    """
    where = str(model_dir / BEST_TRIAL_FILE)
    recorded = recorded_tickers(user_attrs, where, model_dir)
    if recorded is not None:
        if len(recorded) != n:
            fix = (
                "pin the right tickers with "
                f"`cappuccino-paper trial-metadata --from-best-trial --output-dir {model_dir} --tickers "
                f"{ticker_placeholders(n)} --force` (training order), or use the best_trial of this run."
            )
            raise recorded_count_mismatch(where, recorded, n, fix)
        tickers, notes = _resolve_tickers(recorded, requested, n, model_dir, pinned=True)
        return tickers, notes
    default = DEFAULT_TRAINING_TICKERS if n == len(DEFAULT_TRAINING_TICKERS) else None
    try:
        tickers, notes = _resolve_tickers(default, requested, n, model_dir, pinned=False)
    except UnknownTickersError:
        if not allow_unknown:
            raise
        return None, [
            f"tickers unknown: the model trades {n} tickers but neither a manifest nor best_trial's "
            "user_attrs.ticker_list says which (in which order); worker, validate and replay refuse it until "
            f"you pin them with `{missing_metadata_command(model_dir, n)}` (T1..T{n} = the training symbols "
            "in training order)"
        ]
    req_n = len(requested) if requested else None
    if default is not None and tickers == default and req_n != n:
        notes.insert(
            0,
            f"no manifest: assuming the default alphabetical training tickers {', '.join(default)}; pin "
            f"them with `{missing_metadata_command(model_dir, n)}`",
        )
    return tickers, notes


def _profile_warning(prof: EnvProfile, capital: float | None) -> str:
    money = (
        f"capital {prof.initial_capital:g} as given"
        if capital is not None
        else f"capital {prof.initial_capital:g}"
    )
    return (
        f"no manifest: assuming env profile {prof.name!r} ({money}, fees {prof.buy_cost_pct:g}, safety "
        f"{prof.safety_factor:g}); pin it with trial-metadata --profile"
    )


def _spec_from_best_trial(
    info: CheckpointInfo,
    lookback: int,
    model_dir: Path,
    requested_tickers: Sequence[str] | None,
    profile: str | None,
    capital: float | None,
    allow_unknown_tickers: bool,
) -> ModelSpec:
    from cappuccino_daemon.model import profiles

    n = info.n_tickers
    bt_path = model_dir / BEST_TRIAL_FILE
    if not bt_path.is_file():
        raise ConfigError(
            f"{model_dir} has actor.pth but no metadata: neither {MANIFEST_FILE} nor best_trial, so the "
            "tickers, normalisation and lookback the model was trained with are unknown. Fix: run "
            f"`{missing_metadata_command(model_dir, n)}` (add --study NAME if it lists several matching "
            "trials; `cappuccino-paper trials --db ...` shows them)."
        )
    record = read_best_trial(bt_path)
    params = record.params
    norms, warnings = decode_norms(params, str(bt_path))
    warnings += _params_disagreements(params, info, lookback)
    tickers, notes = _legacy_tickers(
        record.user_attrs, n, model_dir, requested_tickers, allow_unknown_tickers
    )
    warnings += notes
    timeframe, notes = timeframe_from(model_dir, record.user_attrs.get("timeframe"), params.get("timeframe"))
    warnings += notes
    prof = profiles.get_profile(profile or legacy_profile_name(params), n, params, capital=capital)
    if profile is None:
        warnings.append(_profile_warning(prof, capital))
    return ModelSpec(
        model_dir=model_dir,
        algorithm=info.algorithm,
        state_dim=info.state_dim,
        net_dim=info.net_dim,
        action_dim=info.action_dim,
        n_hidden_layers=info.n_hidden_layers,
        tickers=tickers or (),
        tickers_known=tickers is not None,
        lookback=lookback,
        features=FEATURES_11,
        timeframe=timeframe,
        norms=norms,
        profile=prof,
        source=TrialSource(record.study, record.number, record.trial_id, "best_trial"),
        params=dict(params),
        user_attrs=dict(record.user_attrs),
        actor_sha256=info.sha256,
        warnings=tuple(warnings),
    )
