"""Offline replay of a model over CSV bars with the training environment's fill rules."""
