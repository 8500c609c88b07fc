"""A local, Alpaca-compatible paper exchange that the unmodified alpaca-py clients talk to.

Kept import-light: ``commands.py`` is imported by the CLI on every start.
"""
