"""Operations: read-only status and report of a daemon, and the worker's Prometheus metrics."""
