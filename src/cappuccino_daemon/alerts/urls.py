"""Where notification URLs come from: never the TOML (they hold tokens), like the Alpaca keys.

``CAPPUCCINO_NOTIFY_URLS`` (URLs separated by spaces, commas or newlines) or the systemd credential
file ``$CREDENTIALS_DIRECTORY/notify_urls`` (one per line; ``LoadCredential=notify_urls:/etc/...``).
Every URL is registered with the log redaction, and only its scheme is ever logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cappuccino_daemon.logsetup import get_logger, register_secret

ENV_VAR = "CAPPUCCINO_NOTIFY_URLS"
CREDENTIAL = "notify_urls"
_SPLIT = re.compile(r"[\s,]+")
log = get_logger(__name__)


def notify_urls(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR, "")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not text.strip() and cred_dir:
        text = _read_credential(Path(cred_dir) / CREDENTIAL)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    urls = [u for u in _SPLIT.split("\n".join(lines)) if u]
    for url in urls:
        register_secret(url)
        for part in re.split(r"[/:@?&=]+", url.split("://", 1)[-1]):
            if len(part) >= 12 and "." not in part:  # tokens and passwords, not host names
                register_secret(part)
    return urls


def _read_credential(path: Path) -> str:
    """The credential's text; none is normal (alerts off), one we cannot read is worth a warning."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("notify_credential_unreadable", path=str(path), error=type(exc).__name__)
        return ""


def describe(urls: Sequence[str]) -> str:
    """What may be logged about the URLs: their services, never the rest."""
    schemes = sorted({u.split("://", 1)[0] for u in urls})
    return f"{len(urls)} URL(s): {', '.join(schemes)}" if urls else "none"
