"""The parity alarm: each live action recomputed by the replay path from the same bars and books.

The live path trims the download at the bar close, shares features between the models of a
tournament and builds the newest state; the replay path (``replay/engine.py``) builds the whole
feature matrix afresh, finds the decision bar's row by its time and takes the state the training env's
``get_state`` would. Both feed the same actor; their raw actions must agree to 1e-6. A disagreement
means the served state is not the training state (an alignment, cache or dtype bug): it is logged as
``parity_alarm``, journaled with both actions and counted in ``cappuccino_parity_alarms_total``. The
bar still trades on the live action: the alarm is a proof that runs alongside, not a second decider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cappuccino_daemon.errors import StaleDataError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import ModelSpec, Policy
from cappuccino_daemon.policy.features import FeatureFn, compute_features, feature_matrix, ticker_features
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.state import state_from_tech_array
from cappuccino_daemon.worker.alerting import Post, parity_alert

log = get_logger(__name__)

PARITY_TOLERANCE = 1e-6
ALARM = "parity_alarm"


@dataclass(frozen=True)
class ParityResult:
    diff: float  # max |live - replay| over the action; inf when the replay path could not decide
    alarm: bool


class ReplayFeatures:
    """The replay path's own per-ticker features, once per ticker and bar for all models of a
    tournament. Kept apart from the live path's memo (``SharedBars``) so that a bug there is not
    repeated here: this one is computed from the download cut at the decision bar."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, int, pd.Timestamp], pd.DataFrame] = {}

    def __call__(self, ticker: str, bars: pd.DataFrame) -> pd.DataFrame:
        if not len(bars):
            return compute_features(bars)
        key = (ticker, len(bars), bars.index[-1])
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) > 256:  # one bar's tickers are all it ever needs
                self._memo.clear()
            found = self._memo[key] = compute_features(bars)
        return found


def replay_decision(
    spec: ModelSpec,
    policy: Policy,
    frames: dict[str, pd.DataFrame],
    bar: datetime,
    account: AccountState,
    features: FeatureFn = ticker_features,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """The replay path's raw action for the decision on ``bar`` (its open time) from these books, and
    that bar's closes."""
    upto = {t: f.loc[f.index <= pd.Timestamp(bar)] for t, f in frames.items() if t in spec.tickers}
    matrix = feature_matrix(upto, spec.tickers, features)
    rows = np.flatnonzero(matrix.times == pd.Timestamp(bar))
    if rows.size != 1:
        raise StaleDataError(f"bar {bar.isoformat()} is not a row of the replay matrix")
    row = int(rows[0])
    state = state_from_tech_array(
        matrix.tech_array, row, spec.lookback, account.cash, account.holdings, spec.norms
    )
    return np.asarray(policy.act(state), dtype=np.float32), matrix.price_array[row]


class ParityCheck:
    """One model's check; ``every`` > 1 checks one bar in ``every`` (a big tournament's budget)."""

    def __init__(
        self,
        spec: ModelSpec,
        policy: Policy,
        journal: Journal,
        every: int = 1,
        features: FeatureFn = ticker_features,
    ) -> None:
        self.spec, self.policy, self.journal, self.every = spec, policy, journal, max(1, every)
        self.features = features  # a tournament's ReplayFeatures, shared by its models
        self.on_alert: Post | None = None  # a person hears of an alarm (worker/alerting.py)
        self._bars = 0

    def check(
        self,
        bar: datetime,
        frames: dict[str, pd.DataFrame],
        account: AccountState,
        live: npt.NDArray[np.float32],
    ) -> ParityResult | None:
        self._bars += 1
        if (self._bars - 1) % self.every:
            return None
        try:
            again, _ = replay_decision(self.spec, self.policy, frames, bar, account, self.features)
            diff = float(np.max(np.abs(again.astype(np.float64) - live.astype(np.float64))))
        except Exception as exc:  # the replay path failed where the live one decided: that is the alarm
            again, diff = None, float("inf")
            log.error("parity_unchecked", model=self.spec.model_id, bar=bar.isoformat(), error=repr(exc))
        if diff <= PARITY_TOLERANCE:
            return ParityResult(diff, alarm=False)
        detail: dict[str, Any] = {
            "model": self.spec.model_id,
            "bar": bar.isoformat(),
            "live": [float(x) for x in live],
            "replay": None if again is None else [float(x) for x in again],
            "max_abs_diff": diff,
            "tolerance": PARITY_TOLERANCE,
        }
        self.journal.record_event(ALARM, None, detail)
        log.error(ALARM, **detail, meaning="the served state differs from the training state")
        if self.on_alert is not None:
            self.on_alert(parity_alert(detail))
        return ParityResult(diff, alarm=True)
