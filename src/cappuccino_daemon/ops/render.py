"""The ``status`` screen: the status dict as a few rich tables, problems first in red."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _kv(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def _process_rows(status: dict[str, Any]) -> list[tuple[str, str]]:
    sup, wk, hb = status.get("supervisor"), status["worker"], status.get("heartbeat")
    rows: list[tuple[str, str]] = []
    if sup is None:
        rows.append(("supervisor", "[yellow]no state file[/]"))
    else:
        live = "[green]alive[/]" if sup["alive"] else "[red]not running[/]"
        rows.append(("supervisor", f"{sup['status']} · pid {sup['pid']} {live} · up {_dur(sup['uptime_s'])}"))
        if sup.get("message"):
            rows.append(("", str(sup["message"])))
    live = "[green]alive[/]" if wk["alive"] else "[red]not running[/]"
    rows.append(
        ("worker", f"{wk.get('state') or '-'} · pid {wk['pid'] or '-'} {live} · up {_dur(wk['uptime_s'])}")
    )
    rows.append(
        (
            "restarts",
            f"{wk.get('restarts') or 0} (failures in a row {wk.get('consecutive_failures') or 0}, "
            f"backoff {_dur(wk.get('backoff_s') or 0.0)}, hang kills {wk.get('hang_kills') or 0})",
        )
    )
    if wk.get("last_exit_reason") or wk.get("last_exit_code") is not None:
        how = wk.get("last_exit_detail") or f"code {wk.get('last_exit_code')}"
        rows.append(("last exit", f"{how} {wk.get('last_exit_reason') or ''}".strip()))
    if hb is None:
        rows.append(("heartbeat", "[yellow]none[/]"))
    else:
        age = f"[red]{_dur(hb['age_s'])} old, STALE[/]" if hb["stale"] else f"{_dur(hb['age_s'])} old"
        rows.append(("heartbeat", f"{hb['phase']} · {age} · {hb['cycles']} cycles this run"))
        rows.append(("last bar", f"{hb['last_bar'] or '-'} · lag {_dur(hb['lag_s'])}"))
        if hb.get("progress") == "stalled":
            since = hb.get("last_progress_at") or "start"
            rows.append(("progress", f"[red]STALLED[/] since {since}: {hb.get('stall_cause') or '-'}"))
        if hb.get("message"):
            rows.append(("message", str(hb["message"])))
    return rows


def _account_table(account: dict[str, Any]) -> Table:
    table = Table(title=f"Virtual account at bar {account['as_of_bar']}", title_justify="left")
    for name in ("ticker", "qty", "price", "value"):
        table.add_column(name, justify="left" if name == "ticker" else "right")
    positions, prices, values = (
        account["positions"] or {},
        account["prices"] or {},
        account["position_values"] or {},
    )
    for ticker, qty in positions.items():
        table.add_row(ticker, f"{qty:.6g}", _money(prices.get(ticker)), _money(values.get(ticker)))
    table.add_row("cash", "", "", _money(account["cash"]), style="dim")
    table.add_row(
        "equity",
        "",
        "",
        f"{_money(account['equity'])} ({_pct(account['return'])})",
        style="bold",
    )
    table.caption = (
        f"start {_money(account['initial_capital'])} · PnL {_money(account['pnl'])} · buy-and-hold "
        f"{_money(account['buy_and_hold_equity'])} ({_pct(account['buy_and_hold_return'])}) · "
        f"vs buy-and-hold {_money(account['vs_buy_and_hold'])}"
    )
    return table


def _journal_rows(journal: dict[str, Any]) -> list[tuple[str, str]]:
    counts = journal["counts"]
    rows = [
        ("journal", f"{journal['path']} ({journal['chosen']})"),
        ("model", f"{journal['model_id']} · {', '.join(journal['tickers'])}"),
        ("cycles", ", ".join(f"{k} {v}" for k, v in counts["cycles"].items()) or "none"),
        ("intents", ", ".join(f"{k} {v}" for k, v in counts["intents"].items()) or "none"),
        ("fills", f"{counts['fills']} (buy {counts['fills_by_side'].get('buy', 0)}, "
                  f"sell {counts['fills_by_side'].get('sell', 0)})"),
    ]  # fmt: skip
    d = journal.get("last_decision")
    if d is not None:
        action = d["action"]
        shown = (
            ", ".join(f"{k} {v:+.3f}" for k, v in action.items())
            if isinstance(action, dict)
            else ", ".join(f"{v:+.3f}" for v in action)
        )
        rows.append(("last decision", f"bar {d['bar_time']} · {d['status']} · lag {_dur(d['lag_s'])}"))
        rows.append(("raw action", shown))
        orders = "; ".join(f"{o['side']} {o['qty']:.6g} {o['ticker']} ({o['kind']})" for o in d["orders"])
        rows.append(("planned", orders or "no orders"))
    last = journal.get("last_cycle")
    if last is not None and last.get("message"):
        rows.append(("last cycle", f"{last['status']}: {last['message']}"))
    halt = journal.get("halt")
    if halt:
        rows.append(("risk", f"{halt_label(halt)} since bar {halt.get('bar')}: {halt.get('message')}"))
    return rows


def _models_table(models: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Tournament: {len(models)} models", title_justify="left")
    for column in ("model", "last bar", "equity", "return", "vs buy-and-hold", "fills", "risk"):
        table.add_column(column, justify="right" if column in ("equity", "return", "fills") else "left")
    for m in models:
        table.add_row(
            m["name"],
            m["last_bar"] or (m["problem"] or "-"),
            _money(m["equity"]),
            _pct(m["return"]),
            _money(m["vs_buy_and_hold"]),
            str(m["fills"]),
            halt_label(m.get("halt")),
        )
    return table


def halt_label(halt: dict[str, Any] | None) -> str:
    """``HALTED (max_drawdown)`` or ``ok``: what status and leaderboard print per model."""
    return "ok" if not halt else f"HALTED ({halt.get('limit', '?')})"


def render_status(status: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    parts: list[Any] = []
    title = "[green]RUNNING[/]" if status["running"] else "[red]NOT RUNNING[/]"
    if status["running"] and status["stale"]:
        title = "[yellow]RUNNING (stale)[/]"
    label = (status.get("model") or {}).get("label")
    if label:
        parts.append(Text(f"Model: {status['model']['dir']} · {label}", style="bold magenta"))
    for problem in status["problems"]:
        parts.append(Text(f"! {problem}", style="yellow"))
    parts.append(_kv("Processes", _process_rows(status)))
    models = status.get("models") or []
    if len(models) > 1:  # a tournament: one line per model; the sections below are the first model's
        parts.append(_models_table(models))
    if status.get("account"):
        parts.append(_account_table(status["account"]))
    if status.get("journal"):
        parts.append(_kv("Journal", _journal_rows(status["journal"])))
    if label:
        title += f" · {label}"
    console.print(Panel(Group(*parts), title=f"cappuccino-paper status: {title}", title_align="left"))
