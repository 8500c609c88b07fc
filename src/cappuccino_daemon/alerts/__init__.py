"""Notifications to people (apprise): what happened, sent from a queue that never holds trading up."""
