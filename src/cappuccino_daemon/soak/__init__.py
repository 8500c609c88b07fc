"""The chaos soak: the whole daemon under kills, hangs and faults, audited against the broker."""
