"""``status`` data: what the supervisor, the worker and the journal say, and how fresh each of them is.

Only reads: the supervisor's ``supervisor.json``, the worker's ``heartbeat.json`` and the journal
(read-only SQLite). Works the same whether the daemon runs or not; the dict built here is both the
``--json`` output (stable keys, ``STATUS_SCHEMA``) and what the rich screen shows.

Money: equity is the virtual account (newest snapshot) valued at the close prices of the newest decided
bar. Buy-and-hold is the equal-weight, fee-free benchmark of FinRL_Crypto: the initial capital split
evenly over the tickers at p0 (the prices persisted with the action normaliser, i.e. the first bar the
model traded), valued at the same newest prices: ``capital * mean(p / p0)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.config import DaemonSettings
from cappuccino_daemon.heartbeat import heartbeat_age_s, read_heartbeat
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.ops.journal_view import JournalView, read_journal
from cappuccino_daemon.ops.labels import demo_label
from cappuccino_daemon.procinfo import process_started_at, runs_cappuccino

STATUS_SCHEMA = 1
ACTOR_FILE = "actor.pth"


@dataclass(frozen=True)
class StatusInputs:
    state_dir: Path
    heartbeat_file: Path
    supervisor_file: Path
    journal_file: Path | None
    journal_note: str  # how the journal was chosen
    heartbeat_stale_after_s: float
    config_file: Path | None = None
    model_dir: Path | None = None  # the configured model, for the "demo model, not a strategy" label
    models: tuple[tuple[str, Path], ...] = ()  # (name, dir) of every configured model (a tournament)

    @classmethod
    def from_settings(cls, settings: DaemonSettings, journal: Path | None = None) -> StatusInputs:
        state = settings.paths.state
        layout = StateLayout(state)
        found: Path | None
        if journal is not None:
            found, note = Path(journal), "given with --journal"
        else:
            found, note = find_journal(state, settings.models_list[0].dir)
        return cls(
            state_dir=state,
            heartbeat_file=layout.heartbeat,
            supervisor_file=layout.supervisor_state,
            journal_file=found,
            journal_note=note,
            heartbeat_stale_after_s=settings.supervisor.heartbeat_timeout_s,
            config_file=settings.source_file,
            model_dir=settings.models_list[0].dir,
            models=tuple((m.name, m.dir) for m in settings.models_list),
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_journal(state_dir: Path, model_dir: Path) -> tuple[Path | None, str]:
    """The worker's default journal ``<state>/journal/<folder>-<sha8>.sqlite`` for the configured model;
    else the newest journal of a model folder with that name; else the newest journal at all."""
    layout = StateLayout(state_dir)
    folder = layout.journal_dir
    if not folder.is_dir():
        return None, f"no journal folder {folder}"
    model_dir = Path(model_dir).resolve()
    actor = model_dir / ACTOR_FILE
    if actor.is_file():
        exact = layout.journal(f"{model_dir.name}-{_sha256(actor)[:8]}")
        if exact.is_file():
            return exact, "journal of the configured model"
    by_mtime = sorted(layout.journals(), key=lambda p: p.stat().st_mtime, reverse=True)
    same_name = [p for p in by_mtime if p.stem == model_dir.name or p.stem.startswith(f"{model_dir.name}-")]
    if same_name:
        return same_name[0], "newest journal of a model folder with the configured name (actor.pth differs)"
    if by_mtime:
        return by_mtime[0], "newest journal in the state folder (NOT the configured model's)"
    return None, f"no *.sqlite journal in {folder}"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _parse(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)).astimezone(UTC) if text else None
    except ValueError:
        return None


def _read_supervisor(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"supervisor state {path} is unreadable ({exc}); the supervisor rebuilds it on start"
    if not isinstance(data, dict):
        return None, f"supervisor state {path} is not a JSON object"
    return data, None


def _supervisor_section(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    pid = data.get("supervisor_pid")
    alive = runs_cappuccino(pid if isinstance(pid, int) else None)
    started = process_started_at(pid) if alive and isinstance(pid, int) else None
    started = started or _parse(data.get("supervisor_started_at"))
    updated = _parse(data.get("updated_at"))
    return {
        "status": data.get("status"),
        "message": data.get("message", ""),
        "pid": pid,
        "alive": alive,
        "started_at": _iso(started),
        "uptime_s": (now - started).total_seconds() if alive and started else None,
        "updated_at": _iso(updated),
        "age_s": (now - updated).total_seconds() if updated else None,
    }


_CHILD_KEYS = (
    "state", "starts", "restarts", "consecutive_failures", "backoff_s", "next_start_at", "last_exit_code",
    "last_exit_signal", "last_exit_reason", "last_exit_detail", "last_exit_at", "hang_kills",
)  # fmt: skip


def _worker_section(child: dict[str, Any] | None, hb_pid: int | None, now: datetime) -> dict[str, Any]:
    child = child or {}
    pid = child.get("pid") if isinstance(child.get("pid"), int) else hb_pid
    alive = runs_cappuccino(pid)
    started = process_started_at(pid) if alive else None
    started = started or (_parse(child.get("started_at")) if alive else None)
    out: dict[str, Any] = {k: child.get(k) for k in _CHILD_KEYS}
    out.update(
        pid=pid,
        alive=alive,
        started_at=_iso(started),
        uptime_s=(now - started).total_seconds() if started else None,
    )
    return out


def _heartbeat_section(inputs: StatusInputs, now_epoch: float) -> dict[str, Any] | None:
    hb = read_heartbeat(inputs.heartbeat_file)
    if hb is None:
        return None
    age = heartbeat_age_s(inputs.heartbeat_file, now_epoch)
    return {
        "time": _iso(hb.time),
        "age_s": age,
        "stale": age is None or age > inputs.heartbeat_stale_after_s,
        "stale_after_s": inputs.heartbeat_stale_after_s,
        "pid": hb.pid,
        "phase": hb.phase,
        "cycles": hb.cycles,
        "last_bar": _iso(hb.last_bar),
        "lag_s": hb.lag_s,
        "equity": hb.equity,
        "positions": hb.positions,
        "message": hb.message,
        "progress": str(hb.progress),  # "ok" | "stalled": bars resolved, apart from the process polling
        "last_progress_at": _iso(hb.last_progress_at),
        "stall_cause": hb.stall_cause,
    }


def _named(tickers: tuple[str, ...], values: tuple[float, ...] | None) -> dict[str, float] | None:
    if values is None or len(values) != len(tickers):
        return None
    return dict(zip(tickers, values, strict=True))


def _journal_section(view: JournalView, note: str) -> dict[str, Any]:
    last = view.cycles[-1] if view.cycles else None
    decided = [c for c in view.cycles if c.action is not None]
    decision: dict[str, Any] | None = None
    if decided:
        d = decided[-1]
        orders = []
        for o in (d.plan or {}).get("orders", []):
            idx = int(o.get("index", -1))
            ticker = view.tickers[idx] if 0 <= idx < len(view.tickers) else None
            orders.append(
                {"ticker": ticker, "side": o.get("side"), "qty": o.get("qty"), "kind": o.get("kind")}
            )
        decision = {
            "bar_time": _iso(d.bar_time),
            "status": d.status,
            "action": _named(view.tickers, d.action) or list(d.action or ()),
            "orders": orders,
            "prices": _named(view.tickers, d.prices),
            "lag_s": d.lag_s,
            "message": d.message,
        }
    sides = {"buy": 0, "sell": 0, **view.fill_sides}
    return {
        "path": str(view.path),
        "chosen": note,
        "model_id": view.model_id,
        "tickers": list(view.tickers),
        "p0": _named(view.tickers, view.p0),
        "p0_bar": _iso(view.p0_bar),
        "last_bar": _iso(last.bar_time) if last else None,
        "last_cycle": None
        if last is None
        else {
            "bar_time": _iso(last.bar_time),
            "status": last.status,
            "lag_s": last.lag_s,
            "message": last.message,
        },
        "last_decision": decision,
        "counts": {
            "cycles": view.cycle_counts,
            "cycles_total": sum(view.cycle_counts.values()),
            "intents": view.intent_status,
            "intents_total": sum(view.intent_status.values()),
            "fills": sum(view.fill_sides.values()),
            "fills_by_side": sides,
        },
        "fees": view.fees,  # virtual books vs the broker's CFEE ledger (None: not audited yet)
        "halt": view.halt,  # a risk limit's halt in force: no new buys until resume-model
    }


def account_section(view: JournalView) -> dict[str, Any] | None:
    """Virtual equity and PnL against equal-weight buy-and-hold (see the module doc)."""
    priced = view.priced_cycles
    capital = view.initial_capital
    if not priced or not view.snapshots or capital is None:
        return None
    latest = priced[-1]
    prices = latest.prices
    snap = view.snapshots[-1]
    assert prices is not None
    if len(snap.holdings) != len(prices):
        return None
    equity = snap.cash + sum(h * p for h, p in zip(snap.holdings, prices, strict=True))
    out: dict[str, Any] = {
        "as_of_bar": _iso(latest.bar_time),
        "prices": _named(view.tickers, prices),
        "cash": snap.cash,
        "positions": _named(view.tickers, snap.holdings),
        "position_values": _named(
            view.tickers, tuple(h * p for h, p in zip(snap.holdings, prices, strict=True))
        ),
        "equity": equity,
        "initial_capital": capital,
        "pnl": equity - capital,
        "return": equity / capital - 1.0 if capital else None,
        "buy_and_hold_equity": None,
        "buy_and_hold_return": None,
        "vs_buy_and_hold": None,
    }
    if view.p0 is not None and len(view.p0) == len(prices) and all(p > 0 for p in view.p0):
        bh = capital * sum(p / p0 for p, p0 in zip(prices, view.p0, strict=True)) / len(prices)
        out.update(
            buy_and_hold_equity=bh,
            buy_and_hold_return=bh / capital - 1.0 if capital else None,
            vs_buy_and_hold=equity - bh,
        )
    return out


def collect_status(
    inputs: StatusInputs, now: datetime | None = None, now_epoch: float | None = None
) -> dict[str, Any]:
    """The full status dict (``--json`` output). Never raises for missing or damaged files: it says so."""
    now = now or datetime.now(UTC)
    now_epoch = now_epoch if now_epoch is not None else now.timestamp()
    problems: list[str] = []
    sup_data, sup_problem = _read_supervisor(inputs.supervisor_file)
    if sup_problem:
        problems.append(sup_problem)
    supervisor = _supervisor_section(sup_data, now) if sup_data is not None else None
    heartbeat = _heartbeat_section(inputs, now_epoch)
    child = (sup_data or {}).get("children", {}).get("worker") if sup_data else None
    worker = _worker_section(
        child if isinstance(child, dict) else None, heartbeat["pid"] if heartbeat else None, now
    )
    journal, account = _journal_and_account(inputs, problems)
    running = bool((supervisor and supervisor["alive"]) or worker["alive"])
    problems += _liveness_problems(inputs, supervisor, heartbeat, worker, journal is None, running)
    stalled = _stalled(heartbeat, worker)
    if stalled and heartbeat is not None:
        since = heartbeat["last_progress_at"] or "the worker started"
        problems.append(
            f"worker is stalled: no bar decided or skipped since {since}: {heartbeat['stall_cause']}"
        )
    label = demo_label(inputs.model_dir)
    return {
        "schema": STATUS_SCHEMA,
        "generated_at": _iso(now),
        "running": running,
        "stale": not running or heartbeat is None or bool(heartbeat["stale"]) or not worker["alive"],
        "stalled": stalled,  # alive and beating, but no bar resolved for two bar intervals
        "problems": problems,
        "config_file": str(inputs.config_file) if inputs.config_file else None,
        "model": {
            "dir": str(inputs.model_dir) if inputs.model_dir else None,
            "demo": label is not None,
            "label": label,
        },
        "paths": {
            "state_dir": str(inputs.state_dir),
            "supervisor_state": str(inputs.supervisor_file),
            "heartbeat": str(inputs.heartbeat_file),
            "journal": str(inputs.journal_file) if inputs.journal_file else None,
        },
        "supervisor": supervisor,
        "worker": worker,
        "heartbeat": heartbeat,
        "journal": journal,  # the first model's (a tournament of one: its only one)
        "account": account,
        "models": [_model_row(inputs.state_dir, name, folder) for name, folder in inputs.models],
    }


def _model_row(state_dir: Path, name: str, model_dir: Path) -> dict[str, Any]:
    """One model of the tournament in one line: its own journal (exact actor match only) and money."""
    row: dict[str, Any] = {"name": name, "dir": str(model_dir), "journal": None, "model_id": None}
    row.update(last_bar=None, equity=None, initial_capital=None, pnl=None, fills=0, problem=None)
    row.update({"return": None, "vs_buy_and_hold": None, "halt": None})
    path, note = find_journal(state_dir, model_dir)
    if path is None or note != "journal of the configured model":
        row["problem"] = "no journal of this model yet (the worker creates it on its first bar)"
        return row
    try:
        view = read_journal(path, summary=True)
    except Exception as exc:
        row["problem"] = str(exc)
        return row
    account = account_section(view) or {}
    row.update(
        journal=str(path),
        model_id=view.model_id,
        last_bar=_iso(view.cycles[-1].bar_time) if view.cycles else None,
        fills=sum(view.fill_sides.values()),
        halt=view.halt,
        **{k: account.get(k) for k in ("equity", "initial_capital", "pnl", "return", "vs_buy_and_hold")},
    )
    return row


def _stalled(heartbeat: dict[str, Any] | None, worker: dict[str, Any]) -> bool:
    """A live worker's fresh heartbeat says it resolves no bars (a stale one says nothing current)."""
    if heartbeat is None or heartbeat["stale"] or not worker["alive"]:
        return False
    return bool(heartbeat["progress"] == "stalled")


def _journal_and_account(
    inputs: StatusInputs, problems: list[str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The journal and virtual-account sections; a missing or unreadable journal becomes a problem."""
    if inputs.journal_file is None:
        problems.append(f"no journal: {inputs.journal_note} (the worker creates it on its first bar)")
        return None, None
    try:
        view = read_journal(inputs.journal_file, summary=True)
    except Exception as exc:
        problems.append(str(exc))
        return None, None
    return _journal_section(view, inputs.journal_note), account_section(view)


def _liveness_problems(
    inputs: StatusInputs,
    supervisor: dict[str, Any] | None,
    heartbeat: dict[str, Any] | None,
    worker: dict[str, Any],
    no_journal: bool,
    running: bool,
) -> list[str]:
    """What is not running or stale, each as one line; the last one says how to start the daemon."""
    problems: list[str] = []
    if supervisor is not None and not supervisor["alive"]:
        problems.append(
            f"supervisor pid {supervisor['pid']} is not running (last status {supervisor['status']!r})"
        )
    if heartbeat is None:
        problems.append(f"no heartbeat at {inputs.heartbeat_file}")
    elif heartbeat["stale"]:
        problems.append(
            f"heartbeat is {heartbeat['age_s']:.0f}s old (stale after {inputs.heartbeat_stale_after_s:.0f}s)"
        )
    if running and not worker["alive"]:
        problems.append(
            f"worker is not running (state {worker.get('state')!r}, backoff {worker.get('backoff_s')}s)"
        )
    nothing = supervisor is None and heartbeat is None and no_journal
    if nothing or not running:
        cfg = f" --config {inputs.config_file}" if inputs.config_file else ""
        problems.append(
            ("nothing has run with this state folder yet" if nothing else "the daemon is not running")
            + f" ({inputs.state_dir}); start it with `cappuccino-paper run{cfg}`"
        )
    return problems
