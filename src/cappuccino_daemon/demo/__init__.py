"""The demo model: a short, genuine PPO training run on the synthetic market (not a strategy)."""
