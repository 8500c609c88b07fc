"""The replay engine in open loop (stored actions) is bit-for-bit the env on CSV-derived features."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cappuccino_daemon.bars import discover_bars, read_bars_csv
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.profiles import get_profile
from cappuccino_daemon.model.spec import Normalisation
from cappuccino_daemon.policy.features import feature_matrix
from cappuccino_daemon.replay.engine import DecisionLines, decision_record, plan_episode, run_replay


class StoredActions:
    """A Policy that replays recorded actor outputs and checks it is asked about the recorded states."""

    def __init__(self, actions: npt.NDArray[np.float32], states: npt.NDArray[np.float32]) -> None:
        self.actions, self.states, self.k = actions, states, 0

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        assert np.array_equal(state, self.states[self.k]), f"state {self.k} differs"
        self.k += 1
        return self.actions[self.k - 1]


def test_open_loop_replay_is_exact(fixtures_dir: Path, ohlcv_dir: Path) -> None:
    name = "roll_a_trial_12_1h_20210301"
    with np.load(fixtures_dir / "rollouts" / f"{name}.npz") as npz:
        d = {k: npz[k] for k in npz.files}
    sidecar = json.loads((fixtures_dir / "rollouts" / f"{name}.json").read_text())
    tickers = sidecar["tickers"]
    paths = discover_bars(ohlcv_dir, "1h")
    matrix = feature_matrix({t: read_bars_csv(paths[t]) for t in tickers}, tickers)
    ep = sidecar["env_params"]
    norms = Normalisation(
        ep["norm_cash"], ep["norm_stocks"], ep["norm_tech"], ep["norm_reward"], ep["norm_action"]
    )
    profile = get_profile("finrl-crypto", len(tickers))
    assert profile.minimum_qty == tuple(sidecar["env_values_used"]["minimum_qty_alpaca"][t] for t in tickers)
    episode = plan_episode(matrix, 3, norms, start=datetime(2021, 3, 1, tzinfo=UTC))
    assert np.array_equal(episode.p0, d["p0"]) and not episode.warnings
    policy = StoredActions(d["raw_action"], d["state_before"])
    decisions = list(run_replay(matrix, policy, 3, norms, profile, episode, max_steps=400))
    assert len(decisions) == 400
    for k, dec in enumerate(decisions):
        assert dec.account.cash == d["cash_after"][k]
        assert np.array_equal(dec.account.holdings, d["stocks_after"][k])
        assert dec.equity == d["total_asset_after"][k]
    assert decisions[119].time.isoformat() == "2021-03-06T01:00:00+00:00"  # the gap: decided on 01:00 ...
    assert decisions[119].fill_time.isoformat() == "2021-03-06T03:00:00+00:00"  # ... filled at 03:00's close
    # The fast JSONL writer (cached row texts and bar times) writes exactly json.dumps' bytes, across
    # the data gap too, and a Decision without its row (not from run_replay) takes the plain path.
    lines = DecisionLines(matrix, keep_rows=4)
    for dec in decisions:
        plain = json.dumps(decision_record(dec, matrix.tickers), separators=(",", ":")) + "\n"
        assert lines.line(dec, dec.plan.orders) == plain, dec.k
    rowless = replace(decisions[5], row=-1, state=decisions[6].state)
    assert (
        lines.line(rowless, rowless.plan.orders)
        == json.dumps(decision_record(rowless, matrix.tickers), separators=(",", ":")) + "\n"
    )


def test_episode_without_history_warns_and_short_window_refused(ohlcv_dir: Path) -> None:
    paths = discover_bars(ohlcv_dir, "1h")
    matrix = feature_matrix({"BTC": read_bars_csv(paths["BTC"])}, ["BTC"])
    norms = Normalisation(1, 1, 1, 1, 10000)
    early = plan_episode(matrix, 1, norms)
    assert early.first_row == 0 and "history" in early.warnings[0]
    with pytest.raises(ConfigError, match="lookback 3 needs at least 4"):
        plan_episode(
            matrix, 3, norms, start=datetime(2021, 3, 1, tzinfo=UTC), end=datetime(2021, 3, 1, 2, tzinfo=UTC)
        )
