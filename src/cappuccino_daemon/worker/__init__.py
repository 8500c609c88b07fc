"""The trading worker: reconcile, decide on each completed bar, execute idempotently, journal."""
