"""Logging: JSON lines off a TTY, and secrets never reach any output."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from cappuccino_daemon.logsetup import REDACTED, redact_text, register_secret

SCRIPT = """
import logging, os
from pathlib import Path
from cappuccino_daemon.logsetup import configure_logging, get_logger
from cappuccino_daemon.config import load_alpaca_credentials
configure_logging(level="INFO", json=None, log_file=Path(os.environ["LOG_FILE"]))
creds = load_alpaca_credentials()
log = get_logger("t")
log.info("connect", api_key=creds.key_id, note="using " + creds.secret_key,
         headers={"APCA-API-SECRET-KEY": "x" * 20})
log.info("plain", url="http://127.0.0.1:1/v2?x=1", detail=f"key={creds.key_id}")
logging.getLogger("foreign").warning("foreign lib saw %s", creds.secret_key)
try:
    raise RuntimeError("boom " + creds.secret_key)
except RuntimeError:
    log.exception("failed")
"""


def test_secret_never_reaches_stdout_stderr_or_log_file(tmp_path: Path) -> None:
    """Keys in fields, values, foreign-library records and tracebacks are all masked."""
    key, secret = "PKZ1Y2X3W4V5U6T7S8R9", "Sup3rS3cretValue/With+Chars99"
    log_file = tmp_path / "logs" / "daemon.jsonl"
    env = {"ALPACA_API_KEY": key, "ALPACA_API_SECRET": secret, "LOG_FILE": str(log_file), "PATH": "/usr/bin"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    outputs = proc.stdout + proc.stderr + log_file.read_text()
    assert key not in outputs and secret not in outputs
    assert REDACTED in outputs
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert events[:2] == ["connect", "plain"]
    assert lines[1]["url"] == "http://127.0.0.1:1/v2?x=1"  # ordinary values survive
    assert any("foreign lib saw" in line["event"] for line in lines)
    assert all("timestamp" in line and "level" in line for line in lines)


def test_redact_text_masks_alpaca_looking_keys_and_registered_values() -> None:
    register_secret("my-registered-secret-123")
    text = redact_text(
        "id PKABCDEFGHIJKLMNOPQR and my-registered-secret-123 and secret=abcdefghijklmnopqrstu"
    )
    assert "PKABCDEFGHIJKLMNOPQR" not in text
    assert "my-registered-secret-123" not in text
    assert "abcdefghijklmnopqrstu" not in text
    assert redact_text("BTC/USD close 46217.19") == "BTC/USD close 46217.19"
    logging.getLogger().handlers.clear()
