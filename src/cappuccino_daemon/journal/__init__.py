"""The worker's durable SQLite journal: cycles, order intents, outcomes, fills, virtual account."""
