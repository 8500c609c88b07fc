"""The order-of-magnitude action normaliser of FinRL_Crypto and Cappuccino (Nov 2025).

``anv[j] = (1 / 10**floor(log(p0[j], 10))) * norm_action`` in float64, with p0 the first close of the
price array the env was built on. Like upstream we take the logarithm with ``math.log(p, 10)``, not
``log10``: the two disagree at exact powers of ten (``math.log(1000, 10)`` is 2.9999999999999996), and
parity with the trained model is what matters. The vector must be computed once per deployment and
persisted: recomputing it after a price crosses a power of ten would rescale the policy tenfold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.errors import InvariantViolation


def order_of_magnitude(price: float) -> int:
    """``floor(log(price, 10))`` exactly as upstream computes it."""
    if not math.isfinite(price) or price <= 0:
        raise InvariantViolation(f"p0 must be a positive finite price, got {price!r}")
    return math.floor(math.log(price, 10))


def action_norm_vector(
    p0: Sequence[float] | npt.NDArray[np.float64], norm_action: float
) -> npt.NDArray[np.float64]:
    """Coins per unit of raw action, per ticker (float64)."""
    factors = [1 / (10 ** order_of_magnitude(float(p))) for p in p0]
    return np.asarray(factors, dtype=np.float64) * norm_action


def scale_action(raw: npt.NDArray[np.float32], anv: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """``float32(float64(raw) * anv)``: what the env's in-place multiply leaves in the action array."""
    return (np.asarray(raw, dtype=np.float32).astype(np.float64) * anv).astype(np.float32)
