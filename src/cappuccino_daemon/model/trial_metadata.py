"""Write ``cappuccino_manifest.json`` (and a legacy ``best_trial``) for a trial folder.

Replaces Cappuccino's ``create_trial_pickle.py``. The old ``--trial-id`` meant either the global DB id
or the per-study number; both are accepted here, and more than one match is a refusal that lists them.
When ``actor.pth`` is present the trial's params are checked against the tensor shapes, so the wrong
study's trial 12 is caught before it is pinned. A folder without ``actor.pth`` (or whose ``actor.pth`` is
not a PPO actor) cannot be served, so no manifest is written for it unless ``--force``; then it is
unpinned (``actor_sha256`` null, architecture from the params), the reason is in its notes and the
loader warns until it is regenerated. Tickers: ``--tickers`` > the trial's ``user_attrs.ticker_list``
(FinRL_Crypto; stored order = training order) > the 7-ticker default.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.atomic import atomic_write_bytes
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.checkpoint import ACTOR_FILE, CheckpointInfo, lookback_or_refuse, read_checkpoint
from cappuccino_daemon.model.loader import (
    BEST_TRIAL_FILE,
    decode_norms,
    legacy_profile_name,
    normalise_ticker,
    recorded_count_mismatch,
    recorded_tickers,
    ticker_placeholders,
    timeframe_from,
)
from cappuccino_daemon.model.manifest import (
    MANIFEST_FILE,
    Manifest,
    ManifestArchitecture,
    ManifestNormalisation,
    ManifestProfile,
    ManifestSource,
    slim_user_attrs,
    write_manifest,
)
from cappuccino_daemon.model.optuna_db import DbTrial, find_trials, get_trial, open_db
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, FEATURES_11
from cappuccino_daemon.model.trial_pickle import read_best_trial

log = get_logger(__name__)


@dataclass(frozen=True)
class TrialData:
    """A trial from either source, reduced to what the manifest needs."""

    study: str | None
    number: int | None
    trial_id: int | None
    value: float | None
    origin: str  # "optuna-db" | "best_trial"
    params: dict[str, Any]
    distributions: dict[str, dict[str, Any]]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any] = field(default_factory=dict)
    state: str = "COMPLETE"
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None
    intermediate_values: dict[int, float] = field(default_factory=dict)


def _from_db(t: DbTrial) -> TrialData:
    return TrialData(
        t.study, t.number, t.trial_id, t.value, "optuna-db", t.params, t.distributions, t.user_attrs,
        t.system_attrs, t.state, t.datetime_start, t.datetime_complete, t.intermediate_values,
    )  # fmt: skip


def _describe(t: DbTrial, info: CheckpointInfo | None) -> str:
    fit = ""
    if info is not None:
        ok = t.params.get("net_dimension") == info.net_dim
        fit = f", {'fits' if ok else 'does not fit'} actor.pth"
    return (
        f"study {t.study} number {t.number} (trial_id {t.trial_id}, {t.state}, value {t.value}, "
        f"net_dimension {t.params.get('net_dimension')}, lookback {t.params.get('lookback')}{fit})"
    )


def select_db_trial(
    db: Path, *, trial_id: int | None, study: str | None, number: int | None, info: CheckpointInfo | None
) -> TrialData:
    """Resolve (study, number) or the ambiguous --trial-id; several matches are a refusal listing them."""
    with open_db(db) as conn:
        if number is not None:
            if study is None:
                raise ConfigError("--number needs --study (trial numbers repeat in every study).")
            found = get_trial(conn, study, number)
            if found is None:
                raise ConfigError(
                    f"{db} has no trial number {number} in study {study!r}. Fix: list the trials with "
                    f"`cappuccino-paper trials --db {db} --study {study}`."
                )
            return _from_db(found)
        assert trial_id is not None
        matches = find_trials(conn, trial_id, study)
    if not matches:
        where = f" in study {study!r}" if study else ""
        raise ConfigError(
            f"{db} has no trial with number or global trial_id {trial_id}{where}. Fix: find the trial with "
            f"`cappuccino-paper trials --db {db}`, then pass --study NAME --number N."
        )
    if len(matches) > 1:
        listing = "; ".join(_describe(t, info) for t in matches)
        raise ConfigError(
            f"--trial-id {trial_id} is ambiguous in {db}: it matches {len(matches)} trials: {listing}. "
            "Folder names use the per-study number, so pick the study that trained these weights and re-run "
            f"with --study NAME --number N (e.g. --study {matches[-1].study} --number {matches[-1].number})."
        )
    return _from_db(matches[0])


def trial_from_best_trial(model_dir: Path) -> TrialData:
    path = Path(model_dir) / BEST_TRIAL_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist. Fix: use --db with --study/--number or --trial-id.")
    r = read_best_trial(path)
    return TrialData(
        r.study, r.number, r.trial_id, r.value, "best_trial", r.params, r.distributions, r.user_attrs,
        r.system_attrs, r.state, r.datetime_start, r.datetime_complete,
    )  # fmt: skip


def _label(trial: TrialData) -> str:
    study = f"study {trial.study}" if trial.study else "unknown study"
    return f"#{trial.number} of {study} (trial_id {trial.trial_id})"


def _check_shapes(trial: TrialData, info: CheckpointInfo, lookback: int, force: bool) -> list[str]:
    problems = []
    p_net, p_lb = trial.params.get("net_dimension"), trial.params.get("lookback")
    if p_net is not None and int(p_net) != info.net_dim:
        problems.append(f"params net_dimension {p_net} but actor.pth is {info.net_dim} wide")
    if p_lb is not None and int(p_lb) != lookback:
        problems.append(f"params lookback {p_lb} but state_dim {info.state_dim} implies lookback {lookback}")
    if problems and not force:
        raise ConfigError(
            f"Trial {_label(trial)} does not describe {info.path}: "
            f"{'; '.join(problems)}. It is probably another study's trial with the same number. Fix: "
            "pick the right one with --study/--number (see `cappuccino-paper trials --db ...`), or pass "
            "--force to pin these params anyway (the mismatch is recorded as a note)."
        )
    return problems


def _count_without_actor(trial: TrialData, tickers: Sequence[str] | None, output_dir: Path) -> int:
    """Number of tickers when there are no weights to count actions on (``--force`` only)."""
    if tickers:
        return len(tickers)
    recorded = recorded_tickers(trial.user_attrs, f"trial {_label(trial)}", output_dir)
    return len(recorded) if recorded else len(DEFAULT_TRAINING_TICKERS)


def _requested(tickers: Sequence[str], n: int) -> list[str]:
    chosen = [normalise_ticker(t) for t in tickers]
    if len(chosen) != n:
        raise ConfigError(
            f"--tickers lists {len(chosen)} symbols but the model has {n} actions. Fix: pass exactly {n} "
            "tickers in the order of the training arrays (alphabetical for Cappuccino/FinRL_Crypto), e.g. "
            f"--tickers {ticker_placeholders(n)}."
        )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"--tickers {','.join(chosen)} names a ticker twice; the state has one slot per ticker. Fix: "
            f"pass {n} different symbols in training (alphabetical) order."
        )
    return chosen


def _recorded_or_forced(
    trial: TrialData, n: int, tickers: Sequence[str] | None, force: bool, output_dir: Path
) -> tuple[tuple[str, ...] | None, list[str]]:
    """The trial's ``ticker_list`` checked against ``n``; with --force and --tickers a bad one is noted."""
    where = f"trial {_label(trial)}"
    try:
        recorded = recorded_tickers(trial.user_attrs, where, output_dir)
        if recorded is not None and len(recorded) != n:
            fix = (
                "pick the trial that trained these weights, or pass --tickers with the "
                f"{n} training symbols and --force (recorded in the manifest's notes)."
            )
            raise recorded_count_mismatch(where, recorded, n, fix)
    except ConfigError as exc:
        if not (force and tickers):
            raise
        return None, [f"--force: ignored the trial's user_attrs.ticker_list ({str(exc)[:160]})"]
    return recorded, []


def choose_tickers(
    trial: TrialData, n: int, tickers: Sequence[str] | None, force: bool, output_dir: Path
) -> tuple[list[str], list[str]]:
    """``--tickers`` > ``user_attrs.ticker_list`` (training order) > the 7-ticker default; else refuse."""
    recorded, notes = _recorded_or_forced(trial, n, tickers, force, output_dir)
    if tickers:
        chosen = _requested(tickers, n)
        if recorded is None or tuple(chosen) == recorded:
            if recorded is None and chosen != sorted(chosen):
                notes.append(f"tickers pinned in the given non-alphabetical order {', '.join(chosen)}")
            return chosen, notes
        if set(chosen) == set(recorded):
            notes.append(
                f"--tickers {','.join(chosen)} put into the trial's ticker_list order {', '.join(recorded)}"
            )
            return list(recorded), notes
        if not force:
            raise ConfigError(
                f"--tickers {','.join(chosen)} disagrees with the trial's user_attrs.ticker_list "
                f"{', '.join(recorded)} (the tickers it was trained on). Fix: drop --tickers to pin the "
                "recorded list, or add --force to pin yours anyway (recorded in the manifest's notes)."
            )
        notes.append(
            f"--force: pinned --tickers {','.join(chosen)} over the trial's ticker_list {','.join(recorded)}"
        )
        return chosen, notes
    if recorded is not None:
        notes.append(
            f"tickers from the trial's user_attrs.ticker_list (training order): {', '.join(recorded)}"
        )
        return list(recorded), notes
    if n == len(DEFAULT_TRAINING_TICKERS):
        notes.append("tickers not given: pinned the default alphabetical training list")
        return list(DEFAULT_TRAINING_TICKERS), notes
    raise ConfigError(
        f"The model trades {n} tickers and the trial does not record which (no user_attrs.ticker_list). "
        f"Fix: add --tickers with exactly {n} symbols in training (alphabetical) order, e.g. "
        f"--tickers {ticker_placeholders(n)}."
    )


def build_manifest(
    trial: TrialData,
    output_dir: Path,
    *,
    info: CheckpointInfo | None,
    tickers: Sequence[str] | None = None,
    profile: str | None = None,
    capital: float | None = None,
    db: Path | None = None,
    force: bool = False,
    extra_notes: Sequence[str] = (),
) -> Manifest:
    """The manifest for ``trial`` pinned to ``info`` (or unpinned when there is no actor.pth)."""
    from cappuccino_daemon.model import profiles

    notes: list[str] = list(extra_notes)
    params = trial.params
    lookback, n, net_dim = _shape(trial, info, tickers, output_dir, force, notes)
    chosen, ticker_notes = choose_tickers(trial, n, tickers, force, output_dir)
    notes += ticker_notes
    norms, norm_notes = decode_norms(params, f"trial {_label(trial)}")
    notes += norm_notes
    timeframe, tf_notes = timeframe_from(
        output_dir, trial.user_attrs.get("timeframe"), params.get("timeframe")
    )
    notes += tf_notes
    profile_name = profile or legacy_profile_name(params)
    prof = profiles.get_profile(profile_name, n, params, capital=capital)
    user_attrs, dropped = slim_user_attrs(trial.user_attrs)
    if dropped:
        notes.append(f"user_attrs not copied (training arrays): {', '.join(dropped)}")
    state_dim = 1 + n + n * len(FEATURES_11) * lookback
    return Manifest(
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        source=_source(trial, db),
        architecture=ManifestArchitecture(
            state_dim=info.state_dim if info else state_dim,
            net_dim=net_dim,
            action_dim=n,
            n_hidden_layers=info.n_hidden_layers if info else 2,
        ),
        tickers=chosen,
        timeframe=timeframe,
        lookback=lookback,
        features=list(FEATURES_11),
        normalisation=ManifestNormalisation(
            cash=norms.cash, stocks=norms.stocks, tech=norms.tech, reward=norms.reward, action=norms.action
        ),
        env_profile=ManifestProfile(**{**prof.__dict__, "minimum_qty": list(prof.minimum_qty)}),
        params=dict(params),
        user_attrs=user_attrs,
        actor_sha256=info.sha256 if info else None,
        notes=notes,
    )


def _shape(
    trial: TrialData,
    info: CheckpointInfo | None,
    tickers: Sequence[str] | None,
    output_dir: Path,
    force: bool,
    notes: list[str],
) -> tuple[int, int, int]:
    """(lookback, tickers, net width): from the weights when there are any, else from the trial params."""
    params = trial.params
    if info is not None:
        lookback = lookback_or_refuse(info)
        notes += _check_shapes(trial, info, lookback, force)
        return lookback, info.n_tickers, info.net_dim
    if "lookback" not in params or "net_dimension" not in params:
        raise ConfigError(
            f"{output_dir / ACTOR_FILE} is missing and the trial params lack lookback/net_dimension, so "
            "the architecture is unknown. Fix: copy actor.pth into the output folder first."
        )
    lookback, net_dim = int(params["lookback"]), int(params["net_dimension"])
    n = _count_without_actor(trial, tickers, output_dir)
    notes.append("not pinned to weights (no sha256); re-run trial-metadata once actor.pth is there")
    return lookback, n, net_dim


def _source(trial: TrialData, db: Path | None) -> ManifestSource:
    return ManifestSource(
        study=trial.study,
        number=trial.number,
        trial_id=trial.trial_id,
        origin=trial.origin,
        db=str(db) if db else None,
        value=trial.value,
    )


def legacy_pickle_bytes(trial: TrialData, folder_name: str) -> bytes:
    """A real Optuna FrozenTrial, pickled like Cappuccino's create_trial_pickle.py, for older tools."""
    import optuna
    from optuna.distributions import json_to_distribution

    user_attrs = {**trial.user_attrs, "name_folder": f"cwd_tests/{folder_name}", "model_name": "ppo"}
    frozen = optuna.trial.FrozenTrial(
        number=trial.number if trial.number is not None else -1,
        state=optuna.trial.TrialState[trial.state],
        value=None,
        values=[trial.value] if trial.value is not None else None,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        params=dict(trial.params),
        distributions={k: json_to_distribution(json.dumps(v)) for k, v in trial.distributions.items()},
        user_attrs=user_attrs,
        system_attrs=dict(trial.system_attrs),
        intermediate_values=dict(trial.intermediate_values),
        trial_id=trial.trial_id if trial.trial_id is not None else -1,
    )
    return pickle.dumps(frozen, protocol=pickle.HIGHEST_PROTOCOL)


def _servable_actor(output_dir: Path, force: bool) -> tuple[CheckpointInfo | None, list[str]]:
    """The folder's PPO actor; a missing or unusable one is refused unless --force (then noted)."""
    actor = output_dir / ACTOR_FILE
    refuse = (
        f"Refusing to write {MANIFEST_FILE} for a folder the worker cannot serve. Fix: copy the trained "
        f"PPO actor.pth into {output_dir} and re-run, or add --force to write an unpinned manifest anyway "
        "(recorded in its notes)."
    )
    if not actor.is_file():
        if not force:
            raise ConfigError(f"{actor} does not exist, so there are no weights to pin. {refuse}")
        reason = "actor.pth missing"
    else:
        try:
            return read_checkpoint(output_dir), []
        except ConfigError as exc:
            if not force:
                raise ConfigError(f"{exc} {refuse}") from None
            reason = f"actor.pth is not a usable PPO actor ({str(exc)[:160]})"
    log.warning("trial_metadata_unpinned", output_dir=str(output_dir), reason=reason)
    return None, [f"--force: written although {reason}"]


def write_trial_metadata(
    output_dir: Path,
    *,
    db: Path | None = None,
    trial_id: int | None = None,
    study: str | None = None,
    number: int | None = None,
    from_best_trial: bool = False,
    tickers: Sequence[str] | None = None,
    profile: str | None = None,
    capital: float | None = None,
    write_pickle: bool = True,
    force: bool = False,
) -> tuple[Path, Manifest]:
    """Resolve the trial, check it against actor.pth, write the manifest (+ best_trial). Returns both."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(
            f"--output-dir {output_dir} is a file. Fix: pass the trial folder that holds actor.pth, e.g. "
            "--output-dir train_results/cwd_tests/trial_12_1h."
        )
    info, forced = _servable_actor(output_dir, force)
    if from_best_trial:
        trial = trial_from_best_trial(output_dir)
        write_pickle = False  # the folder already has the legacy pickle
    else:
        if db is None:
            raise ConfigError("--db is required unless --from-best-trial is given.")
        trial = select_db_trial(db, trial_id=trial_id, study=study, number=number, info=info)
    manifest = build_manifest(
        trial,
        output_dir,
        info=info,
        tickers=tickers,
        profile=profile,
        capital=capital,
        db=db,
        force=force,
        extra_notes=forced,
    )
    try:  # only now, so that a refused trial never leaves a stray folder behind
        output_dir.mkdir(parents=True, exist_ok=True)
        path = write_manifest(output_dir, manifest)
        if write_pickle:
            atomic_write_bytes(output_dir / BEST_TRIAL_FILE, legacy_pickle_bytes(trial, output_dir.name))
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the trial metadata into {output_dir} ({exc.strerror or exc}). Fix: pass a "
            "writable --output-dir (the trial folder that holds actor.pth)."
        ) from None
    log.info(
        "trial_metadata_written",
        manifest=str(path),
        study=trial.study,
        number=trial.number,
        trial_id=trial.trial_id,
        pinned=manifest.actor_sha256 is not None,
    )
    return path, manifest
