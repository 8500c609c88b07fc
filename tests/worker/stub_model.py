"""The trading stub model for the worker tests: ``model/testing.py`` ``write_trading_stub`` (the soak uses
it too). A tiny hand-weighted legacy actor + pinned manifest built in tmp, so these tests need no ../shared.
"""

from __future__ import annotations

from cappuccino_daemon.model import testing

write_stub_model = testing.write_trading_stub
stub_actor = testing.stub_actor
NET_DIM = testing.STUB_NET_DIM
LOOKBACK = testing.STUB_LOOKBACK
NORM_ACTION = testing.STUB_NORM_ACTION
