"""Pure trading logic shared by replay, the live worker and the demo trainer.

Features, the state vector, the action normaliser, the order planner and a reimplementation of the
training environment. Nothing here talks to a broker or the network (import-linter enforces it).
"""
