"""Read a legacy ``best_trial`` pickle (an Optuna FrozenTrial) without executing anything in it.

A pickle is a program: ``pickle.load`` runs whatever callables the file names. This unpickler admits
only an explicit list of classes. The Optuna ones are replaced by inert stand-ins that merely record
their pickled state, so Optuna is never imported and the pickle's Optuna version does not matter;
datetime, a few builtins and numpy's array/scalar reconstructors are the real, side-effect-free ones.
Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``...) is refused before it runs.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cappuccino_daemon.errors import ConfigError

MAX_PICKLE_BYTES = 256 * 1024 * 1024

_TRIAL_CLASSES = {("optuna.trial._frozen", "FrozenTrial"), ("optuna.structs", "FrozenTrial")}
_STATE_CLASSES = {("optuna.trial._state", "TrialState"), ("optuna.structs", "TrialState")}
_DISTRIBUTIONS = (
    "FloatDistribution",
    "IntDistribution",
    "CategoricalDistribution",
    "UniformDistribution",
    "LogUniformDistribution",
    "DiscreteUniformDistribution",
    "IntUniformDistribution",
    "IntLogUniformDistribution",
)
_TRIAL_STATES = {0: "RUNNING", 1: "COMPLETE", 2: "PRUNED", 3: "FAIL", 4: "WAITING"}

# Real classes/functions that are safe to call with any arguments a pickle can supply.
_REAL: dict[tuple[str, str], Any] = {
    ("datetime", "datetime"): datetime,
    ("datetime", "date"): date,
    ("datetime", "timedelta"): timedelta,
    ("datetime", "timezone"): timezone,
    ("builtins", "object"): object,  # only as copyreg._reconstructor's base
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    # numpy scalars / arrays in user_attrs (in-memory FinRL_Crypto studies store np.float64 and arrays).
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _REAL[(_mod, "scalar")] = np._core.multiarray.scalar  # type: ignore[attr-defined]
    _REAL[(_mod, "_reconstruct")] = np._core.multiarray._reconstruct  # type: ignore[attr-defined]
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5 out-of-band arrays
    _REAL[(_mod, "_frombuffer")] = np._core.numeric._frombuffer  # type: ignore[attr-defined]


class _Inert:
    """Stand-in for an admitted Optuna class: records constructor args and pickled state, runs no code."""

    qualified: ClassVar[str] = ""
    args: tuple[Any, ...] = ()
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        self.state = state

    def attrs(self) -> dict[str, Any]:
        return dict(self.state) if isinstance(self.state, dict) else {}


def _inert_class(module: str, name: str) -> type[_Inert]:
    return type(name, (_Inert,), {"qualified": f"{module}.{name}"})


class _Sealed:
    """Wraps an admitted Python function so a pickle's BUILD opcode cannot rewrite its attributes.

    ``BUILD`` on a plain function would ``setattr`` into it (``__name__``, ``__defaults__``...) and the
    change would outlive this load. Through the wrapper, ``BUILD`` is refused like any other misuse.
    """

    __slots__ = ("_fn",)
    _fn: Any

    def __init__(self, fn: Any) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError(f"refused attribute assignment on {self._fn.__name__}")

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"refused BUILD on {self._fn.__name__}")


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Protocol 0/1 ``copyreg._reconstructor``, limited to our inert stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _Inert)) or base is not object or state is not None:
        raise pickle.UnpicklingError("refused copyreg._reconstructor on a non-admitted class")
    return cls.__new__(cls)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Protocol 2 writes bytes as ``_codecs.encode(str, 'latin1')``; only that use is admitted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError("refused _codecs.encode with a non-latin1 codec")
    return text.encode("latin1")


_SEALED_RECONSTRUCTOR = _Sealed(_safe_reconstructor)
_SEALED_LATIN1_ENCODE = _Sealed(_latin1_encode)


def admitted_globals() -> list[str]:
    """Every ``module.name`` this unpickler will resolve (for docs and error messages)."""
    names = [f"{m}.{n}" for m, n in sorted(_TRIAL_CLASSES | _STATE_CLASSES)]
    names += [f"optuna.distributions.{d}" for d in _DISTRIBUTIONS]
    names += [f"{m}.{n}" for m, n in _REAL] + ["copyreg._reconstructor", "_codecs.encode (latin1 only)"]
    return names


class RestrictedTrialUnpickler(pickle.Unpickler):
    """``find_class`` admits only what a FrozenTrial needs; everything else raises before it runs."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file)
        self._inert: dict[tuple[str, str], type[_Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 may carry Python 2 names (copy_reg, __builtin__): map them like pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in _REAL:
            return _REAL[key]
        if key == ("copyreg", "_reconstructor"):
            return _SEALED_RECONSTRUCTOR
        if key == ("_codecs", "encode"):
            return _SEALED_LATIN1_ENCODE
        if (
            key in _TRIAL_CLASSES
            or key in _STATE_CLASSES
            or (module == "optuna.distributions" and name in _DISTRIBUTIONS)
        ):
            if key not in self._inert:
                self._inert[key] = _inert_class(module, name)
            return self._inert[key]
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:  # noqa: ARG002 (pickle's signature)
        raise pickle.UnpicklingError("refused persistent id")


@dataclass(frozen=True)
class TrialRecord:
    """The parts of a FrozenTrial the daemon uses, as plain JSON-able values."""

    number: int | None
    trial_id: int | None
    state: str
    values: list[float] | None
    params: dict[str, Any]
    distributions: dict[str, dict[str, Any]]  # optuna distribution_json form {"name", "attributes"}
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None
    study: str | None = None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None


def plain(obj: Any) -> Any:
    """Convert unpickled values (inert stand-ins, numpy, datetimes, tuples) to JSON-able data."""
    if isinstance(obj, _Inert):
        if obj.qualified.endswith("TrialState"):
            return _TRIAL_STATES.get(obj.args[0] if obj.args else -1, str(obj.args))
        if obj.qualified.startswith("optuna.distributions."):
            return distribution_json(obj)
        return {k.lstrip("_"): plain(v) for k, v in obj.attrs().items()}
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())  # object arrays hold other unpickled values
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((plain(v) for v in obj), key=repr)
    if isinstance(obj, bytes | bytearray):
        return obj.hex()
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    return obj


def distribution_json(dist: _Inert) -> dict[str, Any]:
    """Optuna's ``distribution_to_json`` shape, built from the pickled attributes."""
    return {
        "name": dist.qualified.rsplit(".", 1)[1],
        "attributes": {k.lstrip("_"): plain(v) for k, v in dist.attrs().items()},
    }


def _pick(state: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in state:
            return state[n]
    return None


def _as_datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _to_record(obj: Any, path: Path) -> TrialRecord:
    if not isinstance(obj, _Inert) or not obj.qualified.endswith("FrozenTrial"):
        raise ConfigError(
            f"{path} does not contain an Optuna FrozenTrial (found {type(obj).__name__}). Fix: regenerate it "
            "with `cappuccino-paper trial-metadata --study STUDY --number N --output-dir "
            f"{path.parent} --db databases/optuna_cappuccino.db`."
        )
    st = obj.attrs()
    values = _pick(st, "_values", "values")
    if values is None and _pick(st, "_value", "value") is not None:
        values = [_pick(st, "_value", "value")]
    dists = _pick(st, "_distributions", "distributions") or {}
    return TrialRecord(
        number=_pick(st, "_number", "number"),
        trial_id=_pick(st, "_trial_id", "trial_id"),
        state=str(plain(_pick(st, "state", "_state"))),
        values=[float(v) for v in values] if values is not None else None,
        params=plain(_pick(st, "_params", "params") or {}),
        distributions={str(k): plain(v) for k, v in dists.items()},
        user_attrs=plain(_pick(st, "_user_attrs", "user_attrs") or {}),
        system_attrs=plain(_pick(st, "_system_attrs", "system_attrs") or {}),
        datetime_start=_as_datetime(_pick(st, "_datetime_start", "datetime_start")),
        datetime_complete=_as_datetime(_pick(st, "datetime_complete", "_datetime_complete")),
    )


def _regen_fix(path: Path) -> str:
    return (
        "Fix: regenerate it with `cappuccino-paper trial-metadata --study STUDY --number N --output-dir "
        f"{path.parent} --db databases/optuna_cappuccino.db`."
    )


def loads_trial(data: bytes, path: Path = Path("<bytes>")) -> TrialRecord:
    """Decode pickle bytes through the restricted unpickler; any failure is one ConfigError."""
    obj = _load_restricted(data, path)
    try:
        return _to_record(obj, path)
    except ConfigError:
        raise
    except (RecursionError, ValueError, TypeError, OverflowError, AttributeError) as exc:
        # Self-referencing or absurdly nested containers, values of the wrong type (``_values = "x"``).
        raise ConfigError(
            f"{path} holds an Optuna FrozenTrial whose fields cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:120]}). {_regen_fix(path)}"
        ) from None


def _load_restricted(data: bytes, path: Path) -> Any:
    try:
        obj = RestrictedTrialUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        if not str(exc).startswith("refused"):
            raise ConfigError(
                f"{path} is truncated or not a valid pickle ({exc}). Fix: regenerate it with "
                f"`cappuccino-paper trial-metadata --study STUDY --number N --output-dir {path.parent} --db "
                "databases/optuna_cappuccino.db`."
            ) from None
        raise ConfigError(
            f"Refused to load {path}: {exc}. A best_trial pickle may only contain an Optuna FrozenTrial "
            "(optuna, datetime and numpy values); anything else could execute code, so it was not run. "
            "Fix: do not use this file; regenerate the metadata from the Optuna DB with `cappuccino-paper "
            f"trial-metadata --study STUDY --number N --output-dir {path.parent} --db "
            "databases/optuna_cappuccino.db`."
        ) from None
    except Exception as exc:  # untrusted bytes: EOF, bad opcodes, OverflowError from timedelta(...), ...
        raise ConfigError(
            f"{path} is truncated or not a valid pickle ({type(exc).__name__}: {str(exc)[:120]}). "
            f"{_regen_fix(path)}"
        ) from None
    return obj


def read_best_trial(path: Path) -> TrialRecord:
    """Read ``best_trial`` safely (never plain ``pickle.load``)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise ConfigError(f"{path} is {size} bytes, too large for a best_trial pickle; refusing to read it.")
    return loads_trial(path.read_bytes(), path)
