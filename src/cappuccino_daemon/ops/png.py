"""Figures to PNG files: matplotlib on the Agg backend (no display; safe under systemd and in CI),
written atomically, a write failure one paragraph naming the file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cappuccino_daemon.atomic import atomic_write_bytes
from cappuccino_daemon.errors import ConfigError


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, out: Path, dpi: int, what: str) -> Path:
    """Render ``fig`` (then close it) and write it to ``out``; ``what`` names it in the error."""
    plt = pyplot()
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the {what} to {out} ({exc.strerror or exc}). Fix: pass --out with a writable "
            f"file path, e.g. --out {what}.png."
        ) from None
    return out
