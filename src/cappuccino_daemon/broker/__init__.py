"""The broker port (domain types + protocol) and its alpaca-py adapter."""
