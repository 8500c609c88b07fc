"""``trials --write-config``: a tournament config for the best trials of one Optuna study.

The file is the packaged default config with its ``[model]`` table replaced by one ``[[models]]`` table
per trial, so every other setting and comment is the one a user knows. Only trials that can trade are
taken: COMPLETE, with ``actor.pth`` in their folder and a manifest pinned to it. A folder without a
manifest gets one first (as ``trial-metadata`` writes it, from the same database); a trial that cannot be
pinned (a legacy trial that does not record its tickers) is skipped with a note naming the fix, and the
next best takes its place. The written file is loaded back by the daemon's own loader before returning.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cappuccino_daemon.atomic import atomic_write_text
from cappuccino_daemon.config import load_settings, project_root_for
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.init_project import default_config_text
from cappuccino_daemon.model.manifest import Manifest, read_manifest
from cappuccino_daemon.model.optuna_db import DbTrial, best_trials, list_studies, open_db, trial_folder
from cappuccino_daemon.model.trial_metadata import write_trial_metadata

ALL_TRIALS = 1_000_000  # best_trials' "top" when every COMPLETE trial is wanted in order
_MODEL_TABLE = re.compile(r"^\[model\]\n(?:(?!\[).*\n|\n)*", re.MULTILINE)


@dataclass(frozen=True)
class TournamentModel:
    trial: DbTrial
    folder: Path
    manifest: Manifest
    capital: float
    pinned_now: bool  # the manifest was written by this command


def _one_study(db: Path, study: str | None) -> str:
    with open_db(db) as conn:
        names = [name for _, name, _ in list_studies(conn)]
    if study is not None or len(names) == 1:
        return study or names[0]
    raise ConfigError(
        f"{db} holds {len(names)} studies ({', '.join(names) or 'none'}); trial folders are named by the "
        "per-study number only (trial_<number>_<timeframe>), so a tournament is written for one study. Pass "
        "--study NAME."
    )


def _pinned(db: Path, trial: DbTrial, folder: Path) -> tuple[Manifest, bool]:
    """The folder's manifest, written from the database first when it has none."""
    manifest = read_manifest(folder)
    if manifest is not None:
        return manifest, False
    _, manifest = write_trial_metadata(
        folder, db=db, study=trial.study, number=trial.number, write_pickle=False
    )
    return manifest, True


def select_models(
    db: Path, study: str | None, top: int, results_dir: Path, capital_each: float | None
) -> tuple[list[TournamentModel], list[str]]:
    """The best ``top`` trials that can trade, and one note per trial skipped on the way."""
    name = _one_study(db, study)
    with open_db(db) as conn:
        ranked = best_trials(conn, study=name, top=ALL_TRIALS)
    chosen: list[TournamentModel] = []
    notes: list[str] = []
    for trial in ranked:
        if len(chosen) == top:
            break
        folder = trial_folder(results_dir, trial)
        if not (folder / "actor.pth").is_file():
            continue
        try:
            manifest, pinned_now = _pinned(db, trial, folder)
        except ConfigError as exc:
            notes.append(
                f"skipped trial {trial.number} ({folder}), its manifest cannot be written: {exc} Pin it with "
                f"`cappuccino-paper trial-metadata --db {db} --study {name} --number {trial.number} "
                f"--output-dir {folder}` plus what it asks for, then run this command again."
            )
            continue
        capital = capital_each if capital_each is not None else manifest.env_profile.initial_capital
        chosen.append(TournamentModel(trial, folder, manifest, capital, pinned_now))
    if not chosen:
        raise ConfigError(
            f"No trial of study {name!r} in {db} can trade: none of its COMPLETE trials has actor.pth under "
            f"{results_dir}/cwd_tests (or could be pinned; {len(notes)} skipped). Pass --results-dir with "
            "the train_results folder the trainer wrote, or pin a trial with `cappuccino-paper "
            "trial-metadata`."
        )
    return chosen, notes


def _dir_text(folder: Path, root: Path) -> str:
    """Relative to the project root when the folder is inside it (the file then moves with the project)."""
    folder = folder.resolve()
    try:
        return folder.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(folder)


def models_toml(models: list[TournamentModel], root: Path) -> str:
    first = models[0].trial
    lines = [
        f"# A tournament of the {len(models)} best trials of study {first.study!r} "
        f"({first.direction.lower()}),",
        "# written by `cappuccino-paper trials --write-config`. Each [[models]] table is one model and the",
        "# USD of the account its virtual sub-account gets; the capitals must fit the account's cash.",
    ]
    for m in models:
        value = "none" if m.trial.value is None else f"{m.trial.value:.6g}"
        lines += [
            "",
            "[[models]]",
            f"# trial_id {m.trial.trial_id}, objective {value}; manifest pinned to actor.pth "
            f"{(m.manifest.actor_sha256 or 'NOT pinned')[:12]}",
            f"name = {json.dumps(f't{m.trial.number}')}",
            f"dir = {json.dumps(_dir_text(m.folder, root))}",
            f"capital = {m.capital!r}",
        ]
    return "\n".join(lines) + "\n"


def tournament_config_text(models: list[TournamentModel], out: Path) -> str:
    """The packaged default config with its [model] table replaced by the tournament's tables."""
    base = default_config_text().decode("utf-8")
    block = models_toml(models, project_root_for(out)) + "\n"
    text, count = _MODEL_TABLE.subn(lambda _m: block, base, count=1)
    if count != 1:  # the packaged default always has a [model] table; never write a half config
        raise AssertionError("the packaged default config has no [model] table")
    return text


def write_tournament_config(out: Path, models: list[TournamentModel], *, force: bool = False) -> None:
    """Write ``out`` (never over an existing file without ``force``) and load it back to prove it."""
    if out.exists() and not force:
        raise ConfigError(
            f"{out} already exists; it may be the config you edit, so it is not overwritten. Pass another "
            "--write-config FILE, or add --force to replace it."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, tournament_config_text(models, out))
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the tournament config {out} ({exc.strerror or exc}). Pass --write-config with a "
            "path in a writable folder."
        ) from None
    os.chmod(out, 0o644)
    load_settings(out)
