"""Is the model behind a status or report the demo? Then say so, as the demo's logs and manifest do.

Read from the model folder's ``cappuccino_manifest.json`` (the demo writes ``user_attrs.demo = true``
and its label into ``notes``) with plain ``json``: no torch, no model loading, never raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cappuccino_daemon.demo.layout import LABEL, MANIFEST_FILE


def _manifest(model_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(model_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def demo_label(model_dir: Path | str | None) -> str | None:
    """``LABEL`` when ``model_dir`` holds a demo model, else None (also for a missing or odd manifest)."""
    if model_dir is None:
        return None
    manifest = _manifest(Path(model_dir))
    if manifest is None:
        return None
    attrs = manifest.get("user_attrs")
    notes = manifest.get("notes")
    flagged = isinstance(attrs, dict) and attrs.get("demo") is True
    noted = isinstance(notes, list) and any(isinstance(n, str) and "not a strategy" in n for n in notes)
    return LABEL if flagged or noted else None
