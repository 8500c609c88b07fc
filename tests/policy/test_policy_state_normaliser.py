"""State vector and action normaliser against the golden files, plus the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_golden import ROLLOUTS, TRAJECTORIES, load_golden, norms_from_sidecar

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import Normalisation
from cappuccino_daemon.policy.normaliser import action_norm_vector, order_of_magnitude, scale_action
from cappuccino_daemon.policy.state import build_state, state_dim, state_from_tech_array

NORMS = Normalisation(2.0**-12, 2.0**-8, 2.0**-15, 2.0**-10, 10000)


@pytest.mark.parametrize("name", TRAJECTORIES + ROLLOUTS)
def test_states_rebuilt_from_recorded_accounts(fixtures_dir: Path, name: str) -> None:
    d, sidecar = load_golden(fixtures_dir, name)
    L = sidecar["lookback"]
    norms = norms_from_sidecar(sidecar)
    n = len(sidecar["tickers"])
    assert state_dim(n, 11, L) == sidecar["state_dim"]
    s0 = state_from_tech_array(d["tech_array"], L - 1, L, 1_000_000, np.zeros(n, np.float32), norms)
    assert s0.dtype == np.float32 and np.array_equal(s0, d["state_reset"])
    assert s0[0] == np.float32(244.140625)  # 1,000,000 * 2**-12
    for k in range(1, len(d["raw_action"])):
        t = k + L - 1  # newest row of state_before[k]
        rows = d["tech_array"][t - L + 1 : t + 1][::-1]
        s = build_state(d["cash_after"][k - 1], d["stocks_after"][k - 1], rows, norms)
        assert np.array_equal(s, d["state_before"][k]), k


@pytest.mark.parametrize("name", TRAJECTORIES + ROLLOUTS)
def test_action_norm_vector_and_scaling(fixtures_dir: Path, name: str) -> None:
    d, sidecar = load_golden(fixtures_dir, name)
    anv = action_norm_vector(d["p0"], sidecar["env_params"]["norm_action"])
    assert anv.dtype == np.float64
    assert np.array_equal(anv, d["action_norm_vector"])
    assert np.array_equal(scale_action(d["raw_action"], anv), d["scaled_action"])


def test_normaliser_follows_upstream_log_quirk_and_refuses_bad_p0() -> None:
    # upstream math.log(1000, 10) = 2.9999999999999996, so p0 = 1000 gets the factor of 100-priced coins
    assert order_of_magnitude(1000.0) == 2
    assert order_of_magnitude(999.99) == 2 and order_of_magnitude(1000.01) == 3
    assert np.array_equal(
        action_norm_vector([1095.03, 567.16, 76.76, 0.5], 10000), [10.0, 100.0, 1000.0, 100000.0]
    )
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(InvariantViolation, match="p0"):
            action_norm_vector([bad], 10000)


def test_build_state_refuses_non_finite_values() -> None:
    rows = np.ones((2, 22))
    hold = np.zeros(2, np.float32)
    assert build_state(1000.0, hold, rows, NORMS).shape == (1 + 2 + 44,)
    bad_rows = rows.copy()
    bad_rows[1, 5] = np.nan
    with pytest.raises(InvariantViolation, match="non-finite"):
        build_state(1000.0, hold, bad_rows, NORMS)
    with pytest.raises(InvariantViolation, match="non-finite"):
        build_state(float("inf"), hold, rows, NORMS)
    with pytest.raises(InvariantViolation, match="non-finite"):
        build_state(1000.0, np.array([np.nan, 0], np.float32), rows, NORMS)
    with pytest.raises(InvariantViolation, match="2-D"):
        build_state(1000.0, hold, rows[0], NORMS)
    with pytest.raises(InvariantViolation, match="needs rows"):
        state_from_tech_array(rows, 0, 3, 1000.0, hold, NORMS)


def test_state_is_newest_row_first() -> None:
    tech = np.arange(5 * 3, dtype=np.float64).reshape(5, 3) * 2**15  # row r = [3r, 3r+1, 3r+2] after norm
    s = state_from_tech_array(tech, 4, 2, 0.0, np.zeros(0, np.float32), Normalisation(1, 1, 2.0**-15, 1, 1))
    assert s.tolist() == [0.0, 12.0, 13.0, 14.0, 9.0, 10.0, 11.0]
