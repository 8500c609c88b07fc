"""The supervisor: the systemd main process that spawns, watches and restarts the worker (and emulator).

It imports nothing heavy (no torch, TA-Lib, alpaca-py, numpy, pandas), so it starts fast and cannot be
taken down by the ML stack it supervises.
"""
