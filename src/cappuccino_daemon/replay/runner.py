"""Glue for ``cappuccino-paper replay``: load bars and model, run the engine, write JSONL atomically.

Output: one ``{"type": "decision", ...}`` object per line, then one final ``{"type": "summary", ...}``
line (profile, p0, action normaliser, order counts, final account, return vs an equal-weight
benchmark bought at the episode's first close). The file is written to a temp name and renamed, so a
crash never leaves a truncated replay that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cappuccino_daemon.bars import discover_bars, read_bars_csv
from cappuccino_daemon.errors import ConfigError, StaleDataError
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import EnvProfile, ModelSpec, Normalisation, Policy
from cappuccino_daemon.policy.features import FeatureMatrix, feature_matrix
from cappuccino_daemon.replay.engine import DecisionLines, SummaryBuilder, plan_episode, run_replay

log = get_logger(__name__)


def parse_time(text: str | None, flag: str) -> datetime | None:
    """ISO-8601; a naive time is taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not an ISO-8601 time; write e.g. {flag} 2021-03-01T00:00Z."
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_frames(bars_dir: Path, tickers: Sequence[str], timeframe: str) -> dict[str, pd.DataFrame]:
    found = discover_bars(bars_dir, timeframe)
    missing = [t for t in tickers if t not in found]
    if missing:
        raise ConfigError(
            f"Bars directory {bars_dir} has no {timeframe} CSV for {', '.join(missing)} (found: "
            f"{', '.join(sorted(found)) or 'none'}). The model trades {', '.join(tickers)}; add files named "
            f"e.g. {missing[0]}-USDT_{timeframe}.csv or pass --tickers with the ones you have."
        )
    return {t: read_bars_csv(found[t]) for t in tickers}


def build_matrix(frames: Mapping[str, pd.DataFrame], tickers: Sequence[str], bars_dir: Path) -> FeatureMatrix:
    try:
        matrix = feature_matrix(frames, tickers)
    except StaleDataError as exc:
        raise ConfigError(f"Bars in {bars_dir} cannot be used: {exc}.") from None
    for ticker, times in matrix.dropped.items():
        log.warning(
            "replay_gap",
            ticker=ticker,
            missing_bars=len(times),
            first=str(times[0]),
            rule="row dropped for all",
        )
    return matrix


def replay_to_jsonl(
    spec: ModelSpec,
    policy: Policy,
    matrix: FeatureMatrix,
    out: Path,
    *,
    profile: EnvProfile,
    norms: Normalisation | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run the replay and write ``out``; returns the summary record."""
    norms = norms or spec.norms
    episode = plan_episode(matrix, spec.lookback, norms, start, end)
    for w in episode.warnings:
        log.warning("replay_warning", warning=w)
    summary = SummaryBuilder(spec, profile, norms, episode, matrix)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(
            f"--out {out} is a folder. Fix: pass a file path, e.g. --out {out / 'replay.jsonl'}."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the replay to {out} ({exc.strerror or exc}). Fix: pass --out with a file path "
            "in a writable folder, e.g. --out replay.jsonl."
        ) from None
    try:
        lines = DecisionLines(matrix)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            batch: list[str] = []
            for d in run_replay(matrix, policy, spec.lookback, norms, profile, episode, max_steps):
                orders = d.plan.orders  # built once for both uses
                summary.add(d, orders)
                batch.append(lines.line(d, orders))
                if len(batch) >= 256:
                    fh.write("".join(batch))
                    batch.clear()
            fh.write("".join(batch))
            record = summary.record()
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info(
        "replay_done",
        out=str(out),
        decisions=record["decisions"],
        final_equity=record.get("final_equity"),
        total_return=record.get("total_return"),
    )
    return record
