"""Where the demo writes what, and a cheap check for "is the demo model there?" (no heavy imports).

``make run`` builds the demo only when ``demo/best_model/actor.pth`` is missing (a Makefile file
target), so neither the supervisor nor systemd ever trains; these helpers let tests and tools ask the
same question without importing torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

STUDY_NAME = "cappuccino_demo"
DB_RELPATH = Path("databases") / "optuna_cappuccino.db"
TRIALS_RELDIR = Path("train_results") / "cwd_tests"
BEST_LINK = "best_model"  # DIR/best_model -> train_results/cwd_tests/trial_<best>_1h (relative symlink)
SUMMARY_FILE = "demo_summary.json"
MANIFEST_FILE = "cappuccino_manifest.json"  # == model.manifest.MANIFEST_FILE (kept light here)
LABEL = "demo model, not a strategy"


def demo_dir_for(model_dir: Path) -> Path | None:
    """The demo folder a ``[model] dir`` points into (``DIR/best_model`` -> ``DIR``), else None."""
    model_dir = Path(model_dir)
    return model_dir.parent if model_dir.name == BEST_LINK else None


def demo_model_ready(demo_dir: Path) -> bool:
    """True when ``demo_dir/best_model`` resolves to a folder with ``actor.pth`` and its manifest."""
    best = Path(demo_dir) / BEST_LINK
    return (best / "actor.pth").is_file() and (best / MANIFEST_FILE).is_file()


def demo_command(
    demo_dir: Path, *, trials: int = 3, seconds: float = 60.0, seed: int = 0, python: str | None = None
) -> list[str]:
    """argv that (re)creates the demo model, for ``subprocess.run``."""
    return [
        python or sys.executable,
        "-m",
        "cappuccino_daemon",
        "demo",
        "--dir",
        str(demo_dir),
        "--trials",
        str(trials),
        "--seconds",
        str(seconds),
        "--seed",
        str(seed),
    ]
