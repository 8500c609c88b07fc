"""Bars no exchange could print are refused by one rule (``bars.find_impossible_bar``) wherever bars enter:
replay's CSVs, the emulator's bars folder and the worker's fetched bars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cappuccino_daemon.bars import check_fetched_bars, find_impossible_bar, read_bars_csv
from cappuccino_daemon.broker.alpaca import bars_frame
from cappuccino_daemon.errors import EX_CONFIG, ConfigError, StaleDataError

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = "{t},100,101,99,100.5,3\n"


def _csv(folder: Path, bad_row: str, name: str = "BTC-USDT_1h.csv", rows: int = 6) -> Path:
    """A CSV whose fourth bar (line 5, counting the header as line 1) is ``bad_row``."""
    folder.mkdir(parents=True, exist_ok=True)
    times = pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC")
    lines = [GOOD.format(t=t.strftime("%Y-%m-%dT%H:%M:%SZ")) for t in times]
    lines[3] = bad_row.format(t=times[3].strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = folder / name
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


BAD_ROWS = [
    ("{t},100,101,-19151,100.5,3\n", "low must be a positive finite price"),
    ("{t},0,101,99,100.5,3\n", "open must be a positive finite price"),
    ("{t},100,99,101,100,3\n", "high must not be below low"),
    ("{t},100,101,99,102,3\n", "high must not be below open or close"),
    ("{t},100,101,99.5,99,3\n", "low must not be above open or close"),
    ("{t},100,101,99,100.5,-1\n", "volume must be a finite number >= 0"),
    ("{t},100,101,99,,3\n", "close must be a positive finite price"),
    ("{t},100,101,99,inf,3\n", "close must be a positive finite price"),
]


@pytest.mark.parametrize(("row", "rule"), BAD_ROWS)
def test_read_bars_csv_names_file_line_and_rule(tmp_path: Path, row: str, rule: str) -> None:
    path = _csv(tmp_path, row)
    with pytest.raises(ConfigError) as info:
        read_bars_csv(path)
    message = str(info.value)
    assert str(path) in message and "line 5" in message and rule in message and "\n" not in message


def test_a_price_that_is_not_a_number_names_line_and_column(tmp_path: Path) -> None:
    """It used to be a bare ValueError from numpy's float conversion."""
    path = _csv(tmp_path, "{t},100,101,99,1O0.5,3\n")
    with pytest.raises(ConfigError, match=r"line 5 .*close = '1O0.5' is not a number"):
        read_bars_csv(path)


def test_good_bars_pass_including_flat_ones(tmp_path: Path) -> None:
    path = _csv(tmp_path, "{t},100,100,100,100,0\n")  # a flat bar without trades is printable
    assert len(read_bars_csv(path)) == 6


def test_worker_check_refuses_fetched_bars_by_the_same_rule() -> None:
    """The worker's data check: broker bars parsed by the real adapter; an impossible bar is stale data."""
    rows = [
        {"t": "2024-01-01T00:00:00Z", "o": 100, "h": 101, "l": 99, "c": 100, "v": 1},
        {"t": "2024-01-01T01:00:00Z", "o": 100, "h": 98, "l": 99, "c": 100, "v": 1},
    ]
    frame = bars_frame(rows)
    bad = find_impossible_bar(frame)
    assert bad is not None and bad.position == 1 and "high must not be below low" in bad.rule
    with pytest.raises(StaleDataError, match="ETH bar at 2024-01-01T01:00:00"):
        check_fetched_bars({"BTC": bars_frame(rows[:1]), "ETH": frame})
    check_fetched_bars({"BTC": bars_frame(rows[:1]), "EMPTY": bars_frame([])})  # good and empty pass


def test_emulator_refuses_an_impossible_bar_in_its_bars_folder(tmp_path: Path) -> None:
    path = _csv(tmp_path / "bars", "{t},100,101,-19151,100.5,3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "emulator", "--bars-dir", str(path.parent),
         "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == EX_CONFIG, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and "\n" not in err
    assert str(path) in err and "line 5" in err and "low must be a positive finite price" in err


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("{t},100,101,99,abc,3\n", "is not a number"),
        ("{t},100,101,-19151,100.5,3\n", "low must be a positive"),
    ],
)
def test_replay_refuses_bad_bars_with_file_and_line(
    fixtures_dir: Path, tmp_path: Path, row: str, needle: str
) -> None:
    """replay used to run on a negative low (fills near -19,151, negative equity) or crash on a ValueError."""
    model = fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"
    bars = tmp_path / "bars"
    for base in ("ETH", "LTC"):
        _csv(bars, GOOD, name=f"{base}-USDT_1h.csv")
    bad = _csv(bars, row)
    out = tmp_path / "r.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "replay", "--model-dir", str(model), "--tickers",
         "BTC,ETH,LTC", "--bars-dir", str(bars), "--out", str(out), "--log-level", "ERROR"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == EX_CONFIG, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and "\n" not in err
    assert str(bad) in err and "line 5" in err and needle in err
    assert not out.exists()


def test_a_timestamp_that_is_not_a_time_is_one_paragraph(tmp_path: Path) -> None:
    path = _csv(tmp_path, "yesterday,100,101,99,100.5,3\n")
    with pytest.raises(ConfigError) as info:
        read_bars_csv(path)
    message = str(info.value)
    assert str(path) in message and "line 5" in message and "'yesterday'" in message and "\n" not in message
