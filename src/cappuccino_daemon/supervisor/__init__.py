"""The supervisor: the systemd main process that validates, spawns, watches and restarts the worker.

It imports nothing heavy (no torch, TA-Lib, alpaca-py, numpy, pandas), so it starts fast and cannot be
taken down by the ML stack it supervises.
"""
