"""``cappuccino-paper report``: series from a journal / replay output, drawn into a real PNG."""

from __future__ import annotations

import json
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ops_helpers import BUY_AND_HOLD, CASH_AFTER_T0, EQUITY, T0, T1, make_daemon

from cappuccino_daemon.cli import main
from cappuccino_daemon.errors import EX_CONFIG
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.ops.journal_view import read_journal
from cappuccino_daemon.ops.series import from_journal, read_replay

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"  # complete file, not a truncated write
    return width, height


def test_journal_series_values(tmp_path: Path) -> None:
    d = make_daemon(tmp_path)
    series = from_journal(read_journal(d.journal))
    assert series.times == [T0, T1]  # the skipped bar has no prices, so no point
    assert series.capital == pytest.approx(1000.0)
    assert series.equity == pytest.approx([CASH_AFTER_T0 + 2 * 100.0, EQUITY])
    assert series.buy_hold == pytest.approx([1000.0, BUY_AND_HOLD])
    assert series.prices == {"BTC": [100.0, 110.0], "ETH": [10.0, 12.0]}
    assert [(t.time, t.ticker, t.side, t.qty, t.price) for t in series.trades] == [
        (T0, "BTC", "buy", 2.0, 101.0),
        (T1, "ETH", "buy", 5.0, 12.0),
    ]
    assert series.drawdown == [0.0, 0.0]
    full, quick = read_journal(d.journal), read_journal(d.journal, summary=True)  # status reads the quick one
    assert quick.cycle_counts == full.cycle_counts == {"done": 2, "skipped": 1}
    assert [c.bar_time for c in quick.cycles] == [T1, T0 + 2 * (T1 - T0)] and quick.fills == []
    assert quick.snapshots == [full.snapshots[0], full.snapshots[-1]] and quick.fill_sides == {"buy": 2}


def test_report_from_journal_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_daemon(tmp_path)
    out = tmp_path / "run.png"
    assert main(["report", "--config", str(d.config), "--out", str(out), "--dpi", "80"]) == 0
    width, height = _png_size(out)
    assert width == 11 * 80 and height > 4 * 80  # figure 11 in wide; equity, drawdown and 2 ticker panels
    assert out.stat().st_size > 15_000  # lines, markers and text, not a blank canvas
    assert "2 bars, 2 trades" in capsys.readouterr().out


def test_report_refuses_a_journal_without_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "empty.sqlite"
    Journal(journal).close()
    assert main(["report", "--journal", str(journal), "--out", str(tmp_path / "x.png")]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "holds no decided bar yet" in err and "--replay" in err
    assert not (tmp_path / "x.png").exists()


def _replay_lines(n: int = 40) -> list[dict[str, Any]]:
    """The record layout of replay/engine.py (decision lines, then the summary)."""
    lines: list[dict[str, Any]] = []
    cash, btc = 1000.0, 0.0
    for k in range(n):
        price_btc, price_eth = 100.0 + k, 10.0 + 0.5 * (k % 7)
        orders = []
        if k % 10 == 2:
            cash -= 1.0 * price_btc * 1.001
            btc += 1.0
            orders.append({"symbol": "BTC/USD", "side": "buy", "qty": 1.0, "kind": "buy"})
        if k % 10 == 7 and btc >= 1:
            cash += 1.0 * price_btc * 0.999
            btc -= 1.0
            orders.append({"symbol": "BTC/USD", "side": "sell", "qty": 1.0, "kind": "forced_sell"})
        when = T0 + timedelta(hours=k)
        lines.append(
            {
                "type": "decision", "k": k, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fill_time": (when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "state": [0.0], "action": [0.0, 0.0], "scaled_action": [0.0, 0.0],
                "fill_prices": [price_btc, price_eth], "orders": orders, "cash": cash,
                "holdings": {"BTC": btc, "ETH": 0.0}, "equity": cash + btc * price_btc,
            }
        )  # fmt: skip
    lines.append(
        {
            "type": "summary", "model_id": "trial_7_1h-00000000", "tickers": ["BTC", "ETH"],
            "profile": {"name": "finrl-crypto", "initial_capital": 1000.0}, "p0": {"BTC": 100.0, "ETH": 10.0},
            "decisions": n,
        }
    )  # fmt: skip
    return lines


def test_report_from_replay_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay = tmp_path / "model_check.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in _replay_lines()), encoding="utf-8")

    series = read_replay(replay)
    assert len(series.times) == 40 and series.times[0] == T1
    assert series.buy_hold[0] == pytest.approx(1000.0 * (100.0 / 100.0 + 10.0 / 10.0) / 2)
    assert series.buy_hold[-1] == pytest.approx(1000.0 * (139.0 / 100.0 + 12.0 / 10.0) / 2)
    sides = [(t.side, t.kind) for t in series.trades]
    assert sides.count(("buy", "buy")) == 4 and sides.count(("sell", "forced_sell")) == 4
    assert min(series.drawdown) < 0.0

    assert main(["report", "--replay", str(replay)]) == 0  # default output: FILE.png beside it
    out = replay.with_suffix(".png")
    width, height = _png_size(out)
    assert width == 1100 and height > 500 and out.stat().st_size > 20_000
    assert "40 bars, 8 trades" in capsys.readouterr().out


def test_report_refuses_an_interrupted_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay = tmp_path / "cut.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in _replay_lines()[:-1]), encoding="utf-8")
    assert main(["report", "--replay", str(replay)]) == EX_CONFIG
    assert "no summary line" in capsys.readouterr().err
    replay.write_text('{"type": "decision"\n', encoding="utf-8")
    assert main(["report", "--replay", str(replay)]) == EX_CONFIG
    assert "line 1 is not JSON" in capsys.readouterr().err


def test_report_of_a_real_replay(fixtures_dir: Path, ohlcv_dir: Path, tmp_path: Path) -> None:
    """The real `replay` command's output, drawn: the before-deploying workflow end to end."""
    out = tmp_path / "replay.jsonl"
    model = fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"
    argv = ["replay", "--model-dir", str(model), "--bars-dir", str(ohlcv_dir), "--tickers", "BTC,ETH,LTC"]
    assert main([*argv, "--start", "2021-06-01T00:00:00+00:00", "--steps", "120", "--out", str(out)]) == 0
    series = read_replay(out)
    assert len(series.times) == 120 and series.tickers == ("BTC", "ETH", "LTC")
    summary = json.loads(out.read_text().splitlines()[-1])
    assert series.equity[-1] == pytest.approx(summary["final_equity"])
    assert series.buy_hold[-1] / series.capital - 1 == pytest.approx(summary["equal_weight_return"])
    png = tmp_path / "replay.png"
    assert main(["report", "--replay", str(out), "--out", str(png)]) == 0
    assert _png_size(png)[0] == 1100


def test_report_to_an_unwritable_path_is_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = tmp_path / "model_check.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in _replay_lines(5)), encoding="utf-8")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["report", "--replay", str(replay), "--out", str(blocker / "run.png")]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "Cannot write the report to" in err and "--out" in err


def test_report_of_the_demo_model_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_daemon(tmp_path)
    manifest = {"user_attrs": {"demo": True}, "notes": ["demo model trained for 9.0 seconds, not a strategy"]}
    (d.model_dir / "cappuccino_manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "demo.png"
    assert main(["report", "--config", str(d.config), "--out", str(out), "--dpi", "80"]) == 0
    assert "2 bars, 2 trades (demo model, not a strategy)" in capsys.readouterr().out
    assert out.stat().st_size > 15_000
