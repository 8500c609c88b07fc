"""A tiny real demo run: Optuna DB, legacy checkpoints, manifests, best link, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

from cappuccino_daemon.demo.layout import (
    BEST_LINK,
    DB_RELPATH,
    STUDY_NAME,
    SUMMARY_FILE,
    TRIALS_RELDIR,
    demo_command,
    demo_dir_for,
    demo_model_ready,
)
from cappuccino_daemon.demo.nets import ActorPPO
from cappuccino_daemon.demo.study import DemoOptions, run_demo
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, FEATURES_11

LEGACY_KEYS = {
    "net.0.weight",
    "net.0.bias",
    "net.2.weight",
    "net.2.bias",
    "net.4.weight",
    "net.4.bias",
    "a_std_log",
}


def _tiny(out: Path, **kw: object) -> DemoOptions:
    base: dict[str, object] = {
        "out_dir": out,
        "trials": 2,
        "seconds": 120.0,  # generous: the update cap, not the clock, ends training -> deterministic
        "seed": 11,
        "n_bars": 900,
        "episode_len": 96,
        "objective_rows": 160,
        "max_updates": 2,
    }
    return DemoOptions(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(_tiny(out))


def test_study_db_holds_complete_trials_with_cappuccino_attrs(demo_run: tuple[Path, object]) -> None:
    out, _ = demo_run
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / DB_RELPATH}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        ua = t.user_attrs
        assert ua["timeframe"] == "1h" and ua["model_name"] == "ppo" and ua["demo"] is True
        assert ua["name_folder"] == f"cwd_tests/trial_{t.number}_1h"
        assert len(ua["sharpe_list_bot"]) == len(ua["sharpe_list_hodl"]) == 3
        expected = ua["mean_sharpe_bot"] - ua["mean_sharpe_hodl"] - 0.1 * ua["std_sharpe_bot"]
        assert t.value == pytest.approx(expected)
        assert "not a strategy" in ua["description"]
        assert ua["train_updates"] == 2
        assert 1 <= t.params["lookback"] <= 3 and t.params["net_dimension"] in (64, 128)
        assert 10 <= t.params["norm_action"] <= 40  # small enough that one bar cannot spend the account
        assert "cash budget" in ua["train_reward"]  # the shaped training reward is on record
    # The model layer's read-only DB reader (behind `trials`) decodes it too.
    from cappuccino_daemon.model.optuna_db import best_trials, open_db

    with open_db(out / DB_RELPATH) as conn:
        ranked = best_trials(conn, STUDY_NAME)
    assert ranked[0].value == max(t.value for t in trials)
    assert ranked[0].params["batch_size"] == study.best_trial.params["batch_size"]


def test_trial_folders_hold_legacy_checkpoints_that_training_changed(demo_run: tuple[Path, object]) -> None:
    out, _ = demo_run
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / DB_RELPATH}")
    for t in study.trials:
        folder = out / TRIALS_RELDIR / f"trial_{t.number}_1h"
        sd = torch.load(folder / "actor.pth", weights_only=True, map_location="cpu")
        assert set(sd) == LEGACY_KEYS
        n, lb, net = len(DEFAULT_TRAINING_TICKERS), t.params["lookback"], t.params["net_dimension"]
        assert tuple(sd["net.0.weight"].shape) == (net, 1 + n + 11 * n * lb)
        assert tuple(sd["a_std_log"].shape) == (1, n)
        critic = torch.load(folder / "critic.pth", weights_only=True, map_location="cpu")
        assert tuple(critic["net.4.weight"].shape) == (1, net)
        # Same seed -> same initial actor; the saved one must differ from it (training moved it).
        torch.manual_seed(11 * 10_007 + t.number)
        initial = ActorPPO(net, 1 + n + 11 * n * lb, n).state_dict()
        assert any(not torch.equal(initial[k], sd[k]) for k in LEGACY_KEYS)
        ua = t.user_attrs
        assert ua["train_objective_after"] != ua["train_objective_before"]


def test_manifest_and_loader_accept_every_trial(demo_run: tuple[Path, object]) -> None:
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.checkpoint import sha256_file
    from cappuccino_daemon.model.loader import load_model_spec

    out, _ = demo_run
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / DB_RELPATH}")
    for t in study.trials:
        folder = out / TRIALS_RELDIR / f"trial_{t.number}_1h"
        m = json.loads((folder / "cappuccino_manifest.json").read_text())
        assert m["source"]["study"] == STUDY_NAME and m["source"]["number"] == t.number
        assert m["source"]["trial_id"] == t._trial_id and m["source"]["value"] == pytest.approx(t.value)
        assert m["tickers"] == list(DEFAULT_TRAINING_TICKERS) and m["timeframe"] == "1h"
        assert m["lookback"] == t.params["lookback"] and m["features"] == list(FEATURES_11)
        assert m["normalisation"]["cash"] == 2.0 ** t.params["norm_cash_exp"]
        assert m["normalisation"]["action"] == t.params["norm_action"]
        assert m["env_profile"]["name"] == "cappuccino-nov2025"
        assert m["env_profile"]["initial_capital"] == 1000.0 and m["env_profile"]["buy_cost_pct"] == 0.0025
        assert m["actor_sha256"] == sha256_file(folder / "actor.pth")
        assert m["user_attrs"]["demo"] is True and "not a strategy" in m["user_attrs"]["description"]
        spec = load_model_spec(folder)
        assert spec.source.number == t.number and spec.lookback == t.params["lookback"]
        assert any("not a strategy" in w for w in spec.warnings)  # the label shows wherever the model loads
        policy = load_policy(folder)
        sd = torch.load(folder / "actor.pth", weights_only=True)
        actor = ActorPPO(spec.net_dim, spec.state_dim, spec.action_dim)
        actor.load_state_dict(sd)
        state = torch.randn(spec.state_dim)
        assert policy.act(state.numpy()) == pytest.approx(actor(state[None])[0].detach().numpy(), abs=1e-6)


def test_best_model_link_and_summary(demo_run: tuple[Path, object]) -> None:
    out, _ = demo_run
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / DB_RELPATH}")
    link = out / BEST_LINK
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == (out / TRIALS_RELDIR / f"trial_{study.best_trial.number}_1h").resolve()
    assert demo_model_ready(out) and not demo_model_ready(out / "elsewhere")
    assert demo_dir_for(out / BEST_LINK) == out and demo_dir_for(out / "trial_0_1h") is None
    assert demo_command(out, python="py")[:4] == ["py", "-m", "cappuccino_daemon", "demo"]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["best_trial_number"] == study.best_trial.number
    assert summary["label"] == "demo model, not a strategy"


def test_rerun_appends_trials_and_is_reproducible(tmp_path: Path, demo_run: tuple[Path, object]) -> None:
    out, _ = demo_run
    # The same options into a fresh folder reproduce params and weights exactly.
    again = run_demo(_tiny(tmp_path / "again", trials=1))
    first = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / DB_RELPATH}").trials[0]
    assert again.outcomes[0].number == 0
    second = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{again.db_path}").trials[0]
    assert second.params == first.params and second.value == pytest.approx(first.value)
    a = torch.load(out / TRIALS_RELDIR / "trial_0_1h" / "actor.pth", weights_only=True)
    b = torch.load(again.outcomes[0].folder / "actor.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in LEGACY_KEYS)
    # Re-running into an existing folder adds trials (load_if_exists) and keeps best_model valid.
    more = run_demo(_tiny(tmp_path / "again", trials=1))
    assert [o.number for o in more.outcomes] == [1]
    assert (tmp_path / "again" / BEST_LINK).resolve().is_dir()
    assert (tmp_path / "again" / BEST_LINK / "actor.pth").is_file()


def test_old_workflow_runs_on_demo_artifacts(demo_run: tuple[Path, object], tmp_path: Path) -> None:
    """trials → inspect --generate-command → trial-metadata → validate a config switched to that trial."""
    import contextlib
    import io

    from cappuccino_daemon.cli import main

    out, result = demo_run
    db = out / DB_RELPATH

    def run(*argv: str) -> str:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(list(argv)) == 0
        return buffer.getvalue()

    rows = json.loads(run("trials", "--db", str(db), "--json"))
    best_number = result.best_number  # type: ignore[attr-defined]
    assert [row["study"] for row in rows] == [STUDY_NAME] * len(rows) == [STUDY_NAME] * 2
    assert rows[0]["number"] == best_number  # best first, by the study's direction
    assert rows[0]["value"] >= rows[1]["value"]
    assert all(row["folder_exists"] for row in rows)

    trial_dir = out / TRIALS_RELDIR / f"trial_{best_number}_1h"
    report = json.loads(run("inspect", str(out / BEST_LINK), "--json"))
    assert report["n_tickers"] == len(DEFAULT_TRAINING_TICKERS) and report["algorithm"] == "ppo"
    assert report["features"] == list(FEATURES_11)
    generated = run("inspect", str(trial_dir), "--generate-command")
    assert "cappuccino-paper worker --model-dir" in generated and "[model]" in generated

    # Re-create the metadata from the study into a copy of the folder, as a user of the old tool would.
    copy = tmp_path / f"trial_{best_number}_1h"
    copy.mkdir()
    (copy / "actor.pth").write_bytes((trial_dir / "actor.pth").read_bytes())
    run("trial-metadata", "--study", STUDY_NAME, "--number", str(best_number), "--db", str(db),
        "--output-dir", str(copy))  # fmt: skip
    assert (copy / "cappuccino_manifest.json").is_file() and (copy / "best_trial").is_file()

    # Switching models is an edit of [model] dir; validate accepts the new folder.
    (tmp_path / "daemon.toml").write_text(f'[model]\ndir = "{copy}"\n', encoding="utf-8")
    assert "OK" in run("validate", "--config", str(tmp_path / "daemon.toml"))
