"""Run the demo study: a real Optuna study whose trials train small PPO actors on the synthetic market.

Artifacts have the exact layout of a user's Cappuccino training run, so the whole workflow (``trials``,
``inspect``, ``trial-metadata``, the worker) runs on them unchanged::

    DIR/databases/optuna_cappuccino.db              study "cappuccino_demo" (maximize)
    DIR/train_results/cwd_tests/trial_<n>_1h/       actor.pth, critic.pth, cappuccino_manifest.json
    DIR/best_model -> train_results/cwd_tests/trial_<best>_1h   (relative symlink, replaced atomically)
    DIR/demo_summary.json                           what ran, and the honest label

Every label says what this is: a demo model trained for seconds on a synthetic market, not a strategy.
Training uses the env's reward plus a cash budget (:mod:`cappuccino_daemon.demo.shaping`); the
out-of-sample score, like the daemon, uses the plain env.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cappuccino_daemon.atomic import atomic_write_bytes, atomic_write_json
from cappuccino_daemon.demo.evaluate import Evaluation, evaluate
from cappuccino_daemon.demo.layout import (
    BEST_LINK,
    DB_RELPATH,
    LABEL,
    STUDY_NAME,
    SUMMARY_FILE,
    TRIALS_RELDIR,
)
from cappuccino_daemon.demo.market import MARKET_START, TIMEFRAME, DemoMarket, build_market
from cappuccino_daemon.demo.params import normalisation, ppo_config, suggest_params
from cappuccino_daemon.demo.ppo import PPOTrainer, TrainReport
from cappuccino_daemon.demo.shaping import TRAIN_REWARD, CashBudgetEnv
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, FEATURES_11, EnvProfile, Normalisation
from cappuccino_daemon.policy.envsim import TradingEnv

if TYPE_CHECKING:
    from cappuccino_daemon.model.manifest import ManifestProfile

log = get_logger(__name__)

PROFILE_NAME = "cappuccino-nov2025"
DEFAULT_MARKET_SEED = 7  # config.EmulatorSection.synthetic_seed default: the market the emulator serves


def description(seconds: float) -> str:
    return (
        f"demo model trained for {seconds:.1f} seconds on a synthetic market, not a strategy: "
        "it shows the pipeline working end to end and says nothing about real markets"
    )


@dataclass(frozen=True)
class DemoOptions:
    out_dir: Path
    trials: int = 3
    seconds: float = 60.0
    seed: int = 0
    tickers: tuple[str, ...] = DEFAULT_TRAINING_TICKERS
    n_bars: int = 2400
    market_seed: int = DEFAULT_MARKET_SEED
    episode_len: int = 240  # env steps per training episode (10 days of 1h bars)
    objective_rows: int = 480  # fixed train rows on which the deterministic training objective is measured
    max_updates: int = 1_000_000  # a fixed cap makes a run deterministic when the deadline does not bind
    reserve_s: float = 1.0  # kept back for the best-model link and the summary


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    trial_id: int
    folder: Path
    value: float
    report: TrainReport
    evaluation: Evaluation


@dataclass
class DemoResult:
    out_dir: Path
    db_path: Path
    study_name: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    best_number: int | None = None
    best_value: float | None = None
    best_link: Path | None = None
    seconds: float = 0.0


def _save_state_dict(module: torch.nn.Module, path: Path) -> None:
    """``torch.save(module.state_dict(), path)`` as upstream, written through a temp file + rename.

    torch names the zip archive after the file stem; saving under the final name in a scratch folder
    keeps that stem (``actor``) identical to what the legacy trainer produced.
    """
    scratch = path.parent / f".{path.stem}.saving"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        tmp = scratch / path.name
        torch.save(module.state_dict(), tmp)
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Objective:
    """The Optuna objective; keeps the clock budget across trials."""

    def __init__(
        self,
        opts: DemoOptions,
        market: DemoMarket,
        db_path: Path,
        deadline: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.opts = opts
        self.market = market
        self.db_path = db_path
        self.deadline = deadline
        self.monotonic = monotonic
        self.trials_left = opts.trials
        self.overhead_s = 1.5  # first guess of a trial's non-training time; measured afterwards
        self.outcomes: list[TrialOutcome] = []

    def _profile(self, params: dict[str, Any]) -> EnvProfile:
        from cappuccino_daemon.model.profiles import get_profile

        return get_profile(PROFILE_NAME, len(self.market.tickers), params)

    def _env(self, lo: int, hi: int, lookback: int, norms: Normalisation, profile: EnvProfile) -> TradingEnv:
        price, tech = self.market.window(lo, hi)
        return TradingEnv(price, tech, lookback, norms, profile)

    def __call__(self, trial: Any) -> float:
        import optuna

        started = self.monotonic()
        opts, market = self.opts, self.market
        number, trial_id = int(trial.number), int(trial._trial_id)
        folder_name = f"trial_{number}_{TIMEFRAME}"
        _tag_trial(trial, folder_name)
        params = suggest_params(trial)
        lookback = int(params["lookback"])
        norms = normalisation(params)
        profile = self._profile(params)
        trainer = self._trainer(params, lookback, norms, profile, number)
        train_lo, train_hi = market.train
        obj_hi = min(train_hi, train_lo + opts.objective_rows + 2 * lookback)
        share = (self.deadline - started) / max(self.trials_left, 1)
        train_deadline = started + share - self.overhead_s
        report = trainer.train(
            train_deadline,
            opts.max_updates,
            objective_env=lambda: CashBudgetEnv(self._env(train_lo, obj_hi, lookback, norms, profile)),
            monotonic=self.monotonic,
        )
        evaluation = evaluate(
            trainer.actor,
            [partial(self._env, lo, hi, lookback, norms, profile) for lo, hi in market.eval_windows],
        )
        attrs = self._trial_attrs(report, evaluation)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        score = evaluation.score
        if not math.isfinite(score):
            raise optuna.TrialPruned(f"non-finite score {score}")

        folder = self.opts.out_dir / TRIALS_RELDIR / folder_name
        write_trial_folder(
            folder,
            trainer,
            source={"study": STUDY_NAME, "number": number, "trial_id": trial_id, "value": score},
            db_path=self.db_path,
            tickers=market.tickers,
            lookback=lookback,
            norms=norms,
            profile=profile,
            params=params,
            user_attrs={**trial.user_attrs, **attrs},
        )
        outcome = TrialOutcome(number, trial_id, folder, score, report, evaluation)
        self.outcomes.append(outcome)
        self.trials_left -= 1
        self.overhead_s = max(0.2, (self.monotonic() - started) - report.train_seconds)
        _log_trial_done(number, folder, score, report)
        return score

    def _trainer(
        self, params: dict[str, Any], lookback: int, norms: Normalisation, profile: EnvProfile, number: int
    ) -> PPOTrainer:
        """A PPO trainer on random episode windows of the training span (seeded per trial)."""
        opts, market = self.opts, self.market
        config = ppo_config(params)

        width = opts.episode_len + 2 * lookback
        train_lo, train_hi = market.train
        starts = np.arange(train_lo, train_hi - width + 1, dtype=np.int64)
        n_tickers = len(market.tickers)
        state_dim = 1 + n_tickers + len(FEATURES_11) * n_tickers * lookback
        return PPOTrainer(
            state_dim,
            n_tickers,
            config,
            lambda s: CashBudgetEnv(self._env(s, s + width, lookback, norms, profile)),
            starts,
            seed=opts.seed * 10_007 + number,
        )

    def _trial_attrs(self, report: TrainReport, evaluation: Evaluation) -> dict[str, Any]:
        """The user attrs FinRL_Crypto's tooling reads (Sharpe lists) plus what the demo measured."""
        market = self.market
        bot, hodl = evaluation.sharpe_list_bot, evaluation.sharpe_list_hodl
        attrs: dict[str, Any] = {
            "sharpe_list_bot": bot,
            "sharpe_list_hodl": hodl,
            "mean_sharpe_bot": float(np.mean(bot)),
            "mean_sharpe_hodl": float(np.mean(hodl)),
            "std_sharpe_bot": float(np.std(bot)),
            "description": description(report.train_seconds),
            "tickers": list(market.tickers),
            "market": f"synthetic seed {market.market_seed}, {TIMEFRAME} bars from {MARKET_START:%Y-%m-%d}",
            "train_window": list(market.time_range(*market.train)),
            "eval_windows": [list(market.time_range(lo, hi)) for lo, hi in market.eval_windows],
            "train_updates": report.updates,
            "train_env_steps": report.env_steps,
            "train_seconds": round(report.train_seconds, 3),
            "train_objective_before": report.objective_before,
            "train_objective_after": report.objective_after,
            "eval_trades": [w.trades for w in evaluation.windows],
            "train_reward": TRAIN_REWARD,
        }
        return attrs


def _tag_trial(trial: Any, folder_name: str) -> None:
    """The attrs that make the trial look like a FinRL_Crypto one (folder name, model kind)."""
    trial.set_user_attr("timeframe", TIMEFRAME)
    trial.set_user_attr("name_folder", f"cwd_tests/{folder_name}")
    trial.set_user_attr("model_name", "ppo")
    trial.set_user_attr("demo", True)


def _log_trial_done(number: int, folder: Path, score: float, report: TrainReport) -> None:
    log.info(
        "demo_trial_done",
        label=LABEL,
        number=number,
        folder=str(folder),
        value=round(score, 4),
        updates=report.updates,
        env_steps=report.env_steps,
        steps_per_s=round(report.steps_per_second),
        train_s=round(report.train_seconds, 2),
        stopped_by=report.stopped_by,
        objective_before=round(report.objective_before, 6),
        objective_after=round(report.objective_after, 6),
    )


def write_trial_folder(
    folder: Path,
    trainer: PPOTrainer,
    *,
    source: dict[str, Any],
    db_path: Path,
    tickers: tuple[str, ...],
    lookback: int,
    norms: Normalisation,
    profile: EnvProfile,
    params: dict[str, Any],
    user_attrs: dict[str, Any],
) -> None:
    """actor.pth, critic.pth (legacy state_dicts) and the manifest pinned to the actor's sha256."""
    from cappuccino_daemon.model.checkpoint import sha256_file
    from cappuccino_daemon.model.manifest import (
        Manifest,
        ManifestArchitecture,
        ManifestNormalisation,
        ManifestSource,
        write_manifest,
    )

    folder.mkdir(parents=True, exist_ok=True)
    actor_file = folder / "actor.pth"
    _save_state_dict(trainer.actor, actor_file)
    _save_state_dict(trainer.critic, folder / "critic.pth")
    shapes = {k: tuple(v.shape) for k, v in trainer.actor.state_dict().items()}
    manifest = Manifest(
        created_utc=datetime.now(UTC).isoformat(),
        source=ManifestSource(origin="optuna-db", db=str(db_path.resolve()), **source),
        architecture=ManifestArchitecture(
            state_dim=shapes["net.0.weight"][1],
            net_dim=shapes["net.0.weight"][0],
            action_dim=shapes["net.4.weight"][0],
            n_hidden_layers=2,
        ),
        tickers=list(tickers),
        timeframe=TIMEFRAME,
        lookback=lookback,
        features=list(FEATURES_11),
        normalisation=ManifestNormalisation(
            cash=norms.cash, stocks=norms.stocks, tech=norms.tech, reward=norms.reward, action=norms.action
        ),
        env_profile=_manifest_profile(profile),
        params=params,
        user_attrs=user_attrs,
        actor_sha256=sha256_file(actor_file),
        notes=[str(user_attrs.get("description", LABEL))],
    )
    write_manifest(folder, manifest)


def _manifest_profile(profile: EnvProfile) -> ManifestProfile:
    """The env profile as the manifest records it (every field the trading env depends on)."""
    from cappuccino_daemon.model.manifest import ManifestProfile

    return ManifestProfile(
        name=profile.name,
        initial_capital=profile.initial_capital,
        buy_cost_pct=profile.buy_cost_pct,
        sell_cost_pct=profile.sell_cost_pct,
        safety_factor=profile.safety_factor,
        min_cash_reserve=profile.min_cash_reserve,
        minimum_qty=list(profile.minimum_qty),
        forced_sell_cooldown_steps=profile.forced_sell_cooldown_steps,
        forced_sell_fraction=profile.forced_sell_fraction,
    )


def point_best(out_dir: Path, folder_name: str) -> Path:
    """Atomically (re)point ``out_dir/best_model`` at ``train_results/cwd_tests/<folder_name>``."""
    link = out_dir / BEST_LINK
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink; move it away and re-run the demo")
    tmp = out_dir / f".{BEST_LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(TRIALS_RELDIR / folder_name, target_is_directory=True)
    os.replace(tmp, link)
    return link


def run_demo(
    opts: DemoOptions,
    started: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> DemoResult:
    """Build the market, run ``opts.trials`` trials within ``opts.seconds`` (counted from ``started``)."""

    t0 = monotonic() if started is None else started
    out_dir = opts.out_dir
    db_path = out_dir / DB_RELPATH
    db_path.parent.mkdir(parents=True, exist_ok=True)
    (out_dir / TRIALS_RELDIR).mkdir(parents=True, exist_ok=True)
    log.info(
        "demo_start",
        label=LABEL,
        dir=str(out_dir),
        trials=opts.trials,
        seconds=opts.seconds,
        seed=opts.seed,
        tickers=",".join(opts.tickers),
    )
    market = build_market(opts.tickers, opts.n_bars, opts.market_seed)
    study = _open_study(db_path, opts.seed)
    objective = _Objective(opts, market, db_path, t0 + opts.seconds - opts.reserve_s, monotonic)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is faster and deterministic
    try:
        study.optimize(objective, n_trials=opts.trials)
    finally:
        torch.set_num_threads(threads)
    result = DemoResult(out_dir=out_dir, db_path=db_path, study_name=STUDY_NAME, outcomes=objective.outcomes)
    ranked = _point_at_best(study, out_dir, result)
    result.seconds = monotonic() - t0
    _write_summary(out_dir, result, market, opts, ranked)
    log.info(
        "demo_done",
        label=LABEL,
        best_number=result.best_number,
        best_value=result.best_value,
        best_model=str(result.best_link) if result.best_link else None,
        seconds=round(result.seconds, 2),
    )
    return result


def _open_study(db_path: Path, seed: int) -> Any:
    """The demo study in its SQLite db; the sampler seed moves on with every trial already there."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db_path}"
    probe = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="maximize", load_if_exists=True
    )
    sampler = optuna.samplers.TPESampler(seed=seed + len(probe.trials))
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="maximize", load_if_exists=True, sampler=sampler
    )
    study.set_user_attr("demo", True)
    study.set_user_attr("description", "demo study on a synthetic market, not a strategy")
    return study


def _point_at_best(study: Any, out_dir: Path, result: DemoResult) -> list[tuple[float, int]]:
    """Rank complete trials with a written actor (best value, then lowest number); link the best."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    folders = {t.number: out_dir / TRIALS_RELDIR / f"trial_{t.number}_{TIMEFRAME}" for t in complete}
    ranked = sorted(
        (
            (float(t.value), t.number)
            for t in complete
            if t.value is not None and (folders[t.number] / "actor.pth").is_file()
        ),
        key=lambda vn: (-vn[0], vn[1]),
    )
    if ranked:
        result.best_value, result.best_number = ranked[0]
        result.best_link = point_best(out_dir, folders[result.best_number].name)
    return ranked


def _write_summary(
    out_dir: Path, result: DemoResult, market: DemoMarket, opts: DemoOptions, ranked: list[tuple[float, int]]
) -> None:
    """demo_summary.json: what this run trained and which trial best_model points at."""
    atomic_write_json(
        out_dir / SUMMARY_FILE,
        {
            "label": LABEL,
            "description": description(sum(o.report.train_seconds for o in result.outcomes)),
            "study": STUDY_NAME,
            "db": str(DB_RELPATH),
            "best_model": BEST_LINK,
            "best_trial_number": result.best_number,
            "best_value": result.best_value,
            "best_folder": str(TRIALS_RELDIR / f"trial_{result.best_number}_{TIMEFRAME}") if ranked else None,
            "tickers": list(market.tickers),
            "market_seed": market.market_seed,
            "seed": opts.seed,
            "trials_this_run": [o.number for o in result.outcomes],
            "seconds": round(result.seconds, 2),
            "written_utc": datetime.now(UTC).isoformat(),
        },
    )
