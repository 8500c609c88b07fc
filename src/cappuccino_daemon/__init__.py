"""cappuccino-paper: supervised paper-trading daemon for legacy ElegantRL PPO crypto models."""

__version__ = "0.1.0"
