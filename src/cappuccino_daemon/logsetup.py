"""structlog, configured once per process: JSON lines for journald, readable text on a terminal.

Every event passes a redaction processor, so a key or secret never reaches stdout or a log file,
whatever a caller put in the event.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

REDACTED = "***REDACTED***"
_SENSITIVE_KEY = re.compile(r"(secret|passw|token|api[_-]?key|key[_-]?id|authorization|credential)", re.I)
# Alpaca key ids (PK/AK/CK + 16-20 upper alnum) and long base62-ish secrets next to a secret-ish word.
_SENSITIVE_VALUE = re.compile(
    r"\b(?:PK|AK|CK)[A-Z0-9]{14,30}\b|(?i:(?:secret|api[_-]?key|token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{16,}"
)
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret's exact value so it is masked wherever it appears."""
    if value and len(value) >= 6:
        _known_secrets.add(value)


def redact_text(text: str) -> str:
    for secret in _known_secrets:
        text = text.replace(secret, REDACTED)
    return _SENSITIVE_VALUE.sub(REDACTED, text)


def _redact(value: Any, key: str = "") -> Any:
    if key and _SENSITIVE_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    return {key: _redact(value, key) for key, value in event_dict.items()}


def configure_logging(level: str = "INFO", json: bool | None = None, log_file: Path | None = None) -> None:
    """JSON when not a TTY (systemd/journald), console rendering on a TTY; optional rotating file."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )

    def formatter(final: Any) -> logging.Formatter:
        # Records from plain `logging` users (uvicorn, optuna) get the same stamps and redaction.
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, final],
        )

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(formatter(renderer))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5)
        file_handler.setFormatter(formatter(structlog.processors.JSONRenderer()))
        handlers.append(file_handler)
    root = logging.getLogger()
    root.handlers = handlers
    root.setLevel(level)
    for noisy in ("urllib3", "uvicorn.access", "alembic", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
