"""``cappuccino-paper replay`` over the real OHLCV reproduces the golden rollouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cappuccino_daemon.cli import main
from cappuccino_daemon.errors import EX_CONFIG


def _golden(fixtures_dir: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(fixtures_dir / "rollouts" / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((fixtures_dir / "rollouts" / f"{name}.json").read_text())


def _read(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[-1]["type"] == "summary"
    assert all(r["type"] == "decision" for r in lines[:-1])
    return lines[:-1], lines[-1]


CASES = [
    ("roll_a_trial_12_1h_20210301", "trial_12_1h", "2021-03-01T00:00Z", []),
    ("roll_a2_trial_12_1h_20210301_na1000", "trial_12_1h", "2021-03-01T00:00Z", ["--norm-action", "1000"]),
    (
        "roll_b_trial_7_1h_20210601",
        "trial_7_1h",
        "2021-06-01T00:00:00+00:00",
        ["--tickers", "BTC,ETH", "LTC"],
    ),
]


IDS = [c[0].split("_trial")[0] for c in CASES]


@pytest.mark.parametrize(("name", "folder", "start", "extra"), CASES, ids=IDS)
def test_replay_reproduces_rollout(
    fixtures_dir: Path, ohlcv_dir: Path, tmp_path: Path, name: str, folder: str, start: str, extra: list[str]
) -> None:
    d, sidecar = _golden(fixtures_dir, name)
    out = tmp_path / "replay.jsonl"
    argv = ["replay", "--model-dir", str(fixtures_dir / "train_results" / "cwd_tests" / folder)]
    argv += ["--bars-dir", str(ohlcv_dir), "--profile", "finrl-crypto", "--start", start, "--steps", "400"]
    assert main([*argv, *extra, "--out", str(out)]) == 0
    decisions, summary = _read(out)
    tickers = sidecar["tickers"]
    assert len(decisions) == 400 and summary["decisions"] == 400
    assert summary["tickers"] == tickers
    assert list(summary["action_norm_vector"].values()) == d["action_norm_vector"].tolist()
    for k, rec in enumerate(decisions):
        assert rec["time"] == str(d["state_bar_timestamp"][k]), k
        assert rec["fill_time"] == str(d["bar_timestamp"][k]), k
        assert np.abs(np.array(rec["action"]) - d["raw_action"][k]).max() <= 1e-5, k
        assert np.array(rec["fill_prices"]).tolist() == d["fill_price"][k].tolist()
        # Same orders (symbol, side, kind) as the env's decomposition, quantities within 1e-6 relative.
        want = []
        for j, t in enumerate(tickers):
            for kind, arr in (
                ("sell", d["sell_qty"]),
                ("forced_sell", d["forced_sell_qty"]),
                ("buy", d["buy_qty"]),
            ):
                if arr[k][j] > 0:
                    want.append((f"{t}/USD", "buy" if kind == "buy" else "sell", kind, arr[k][j]))
        got = [(o["symbol"], o["side"], o["kind"], o["qty"]) for o in rec["orders"]]
        assert sorted(g[:3] for g in got) == sorted(w[:3] for w in want), k
        for g, w in zip(sorted(got), sorted(want), strict=True):
            assert g[3] == pytest.approx(w[3], rel=1e-6, abs=0.0)
        # The parity goal's relative bound (as the closed-loop policy test): cash falls to cents, so an
        # absolute slack such as 0.05 would accept errors above 100 % there.
        assert rec["cash"] == pytest.approx(d["cash_after"][k], rel=1e-6, abs=0.0), k
        assert np.allclose(list(rec["holdings"].values()), d["stocks_after"][k], rtol=1e-6, atol=0.0)
        assert rec["equity"] == pytest.approx(d["total_asset_after"][k], rel=1e-6)
    assert summary["final_equity"] == pytest.approx(sidecar["final"]["total_asset"], rel=1e-6)
    # The first state is exactly the env's reset state (indicators over the whole file, rows L-1..0).
    assert np.array_equal(np.array(decisions[0]["state"], dtype=np.float32), d["state_reset"])


def test_end_bounds_the_episode_and_summary_is_complete(
    fixtures_dir: Path, ohlcv_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    model = fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"
    argv = [
        "replay",
        "--model-dir",
        str(model),
        "--bars-dir",
        str(ohlcv_dir),
        "--tickers",
        "BTC",
        "ETH",
        "LTC",
    ]
    argv += [
        "--start",
        "2021-06-01T00:00Z",
        "--end",
        "2021-06-01T10:00Z",
        "--capital",
        "1000",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    decisions, summary = _read(out)
    # 11 rows, L=1: decisions on rows 0..9, each filled at the next row's close.
    assert len(decisions) == 10
    assert decisions[-1]["fill_time"] == "2021-06-01T10:00:00Z"
    assert summary["profile"]["initial_capital"] == 1000.0
    assert summary["episode_start"] == "2021-06-01T00:00:00Z"
    assert decisions[0]["state"][0] == pytest.approx(1000 * 2**-12)
    assert set(summary) >= {
        "final_cash",
        "final_holdings",
        "final_equity",
        "total_return",
        "equal_weight_return",
        "p0",
    }


def test_missing_bars_and_short_window_exit_78(
    fixtures_dir: Path, ohlcv_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"
    few = tmp_path / "bars"
    few.mkdir()
    (few / "BTC-USDT_1h.csv").write_text((ohlcv_dir / "BTC-USDT_1h.csv").read_text())
    out = tmp_path / "r.jsonl"
    base = ["replay", "--model-dir", str(model), "--tickers", "BTC,ETH,LTC", "--out", str(out)]
    assert main([*base, "--bars-dir", str(few)]) == EX_CONFIG
    assert "no 1h CSV for ETH, LTC" in capsys.readouterr().err
    assert main([*base, "--bars-dir", str(ohlcv_dir), "--start", "2021-07-17T20:00Z"]) == EX_CONFIG
    assert "needs at least 2" in capsys.readouterr().err
    assert main([*base, "--bars-dir", str(ohlcv_dir), "--start", "yesterday"]) == EX_CONFIG
    assert not out.exists()


def test_bad_out_capital_norm_action_and_log_level_are_one_paragraph(
    fixtures_dir: Path, ohlcv_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of these used to end in a traceback (or, for --norm-action <= 0, a silently inverted policy)."""
    model = fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    base = ["replay", "--model-dir", str(model), "--tickers", "BTC,ETH,LTC", "--bars-dir", str(ohlcv_dir)]
    base += ["--steps", "2"]
    out = str(tmp_path / "r.jsonl")
    cases = [
        (["--out", str(blocker / "r.jsonl")], "Cannot write the replay to"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", out, "--capital", "nan"], "--capital must be a positive number"),
        (["--out", out, "--capital", "inf"], "--capital must be a positive number"),
        (["--out", out, "--profile", "finrl-crypto", "--capital", "nan"], "--capital must be a positive"),
        (["--out", out, "--norm-action", "0"], "--norm-action must be a positive number"),
        (["--out", out, "--norm-action", "-1000"], "--norm-action must be a positive number"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == EX_CONFIG, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    assert not Path(out).exists()
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", out, "--log-level", "banana"])
    assert exc.value.code == 2 and "'banana' is not a log level" in capsys.readouterr().err
