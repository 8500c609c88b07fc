"""What the training env would have done at the bars the worker skipped, recorded at its next decision.

A skipped bar (the worker down or restarting, a bar late) has no live decision, but once the bars are
in again the replay path can take the env's step there from the books the account had (nothing traded
since): its action, its plan at that bar's closes, the books it would have left. Each becomes one
``skipped_bar_env`` event, which the audit values as the ``skipped_bars`` part of the gap. A bar whose
data never arrived stays unvalued (the event says why). The events are written once the decision's
orders are out (``Cycle.conclude``: they never delay an order); a worker killed in between leaves those
bars without one, and the audit's ``other`` then holds their part of the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import ModelSpec, Policy
from cappuccino_daemon.policy.features import FeatureFn, ticker_features
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.planner import plan_step
from cappuccino_daemon.worker.parity import replay_decision

log = get_logger(__name__)


def record_skipped(
    journal: Journal,
    spec: ModelSpec,
    policy: Policy,
    frames: dict[str, pd.DataFrame],
    account: AccountState,
    anv: npt.NDArray[np.float64],
    bars: Sequence[datetime],
    features: FeatureFn = ticker_features,
) -> int:
    """One event per skipped bar (``journal.skipped_since_decision`` read before the decision was
    journaled); returns how many were valued."""
    valued = 0
    for bar in bars:
        detail: dict[str, Any] = {"bar": bar.isoformat(), "cash": account.cash}
        detail["holdings"] = [float(h) for h in account.holdings]
        detail["cooldown"] = [float(c) for c in account.cooldown]
        try:
            raw, prices = replay_decision(spec, policy, frames, bar, account, features)
            plan = plan_step(raw, account, prices, anv, spec.profile)
        except Exception as exc:  # no bars for it, or the replay path refused: recorded, not valued
            journal.record_event(SKIPPED_ENV, None, detail | {"unvalued": f"{type(exc).__name__}: {exc}"})
            continue
        detail |= {"prices": prices.tolist(), "action": [float(x) for x in raw]}
        detail["env_after"] = {"cash": plan.after.cash, "holdings": [float(h) for h in plan.after.holdings]}
        journal.record_event(SKIPPED_ENV, None, detail)
        valued += 1
    if valued:
        log.info("skipped_bars_valued", model=spec.model_id, bars=valued)
    return valued
