"""The restricted best_trial unpickler: fixtures decode; anything else is refused before it runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import optuna
import pytest

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.trial_pickle import admitted_globals, loads_trial, read_best_trial


def _bt(fixtures_dir: Path, name: str) -> Path:
    return fixtures_dir / "train_results" / "cwd_tests" / name / "best_trial"


def test_model_pickle_fixture_trial_12(fixtures_dir: Path) -> None:
    r = read_best_trial(_bt(fixtures_dir, "trial_12_1h"))
    assert (r.number, r.trial_id, r.state) == (12, 74, "COMPLETE")
    assert r.value == pytest.approx(1.2195346544130021)
    assert r.params["batch_size"] == 1536 and r.params["use_lr_schedule"] is False
    assert r.distributions["batch_size"] == {
        "name": "CategoricalDistribution",
        "attributes": {"choices": [1536, 2048, 3072, 4096]},
    }
    assert r.user_attrs["name_folder"] == "cwd_tests/trial_12_1h"
    assert "fixed_params" in r.system_attrs
    assert r.datetime_start is not None and r.datetime_start.year == 2025


def test_model_pickle_fixture_3358_and_7(fixtures_dir: Path) -> None:
    r = read_best_trial(_bt(fixtures_dir, "trial_3358_1h"))
    assert (r.number, r.trial_id, r.params["net_dimension"]) == (3358, 3508, 1280)
    r7 = read_best_trial(_bt(fixtures_dir, "trial_7_1h"))
    assert r7.number == 7 and "name_folder" not in r7.user_attrs and r7.user_attrs["timeframe"] == "1h"


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_model_malicious_pickle_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "best_trial"
    path.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(ConfigError) as err:
        read_best_trial(path)
    assert not marker.exists()
    text = str(err.value)
    assert "system" in text and str(path) in text and "trial-metadata" in text


def test_model_malicious_pickle_hidden_inside_trial(tmp_path: Path) -> None:
    """A payload nested in user_attrs of a genuine FrozenTrial is refused too."""
    marker = tmp_path / "pwned2"
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"x": 1})
    trial._user_attrs["evil"] = _Boom(marker)  # bypass JSON checks, as a forged file would
    data = pickle.dumps(trial)
    with pytest.raises(ConfigError, match="refused global"):
        loads_trial(data, tmp_path / "best_trial")
    assert not marker.exists()


@pytest.mark.parametrize(
    "evil", ["builtins.eval", "builtins.getattr", "subprocess.Popen", "optuna.load_study"]
)
def test_model_pickle_refuses_other_globals(evil: str) -> None:
    module, name = evil.rsplit(".", 1)
    data = b"\x80\x04" + b"\x8c" + bytes([len(module)]) + module.encode()
    data += b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93."
    with pytest.raises(ConfigError, match=f"refused global {module}.{name}"):
        loads_trial(data)
    assert evil not in admitted_globals()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_model_pickle_protocols_and_numpy(protocol: int) -> None:
    trial = optuna.trial.create_trial(
        params={"x": 1.5, "c": "b"},
        distributions={
            "x": optuna.distributions.FloatDistribution(0.0, 2.0),
            "c": optuna.distributions.CategoricalDistribution(["a", "b"]),
        },
        value=1.25,
        user_attrs={"arr": np.arange(3), "f": np.float64(0.5)},
    )
    r = loads_trial(pickle.dumps(trial, protocol=protocol))
    assert r.params == {"x": 1.5, "c": "b"} and r.value == 1.25
    assert r.user_attrs == {"arr": [0, 1, 2], "f": 0.5}
    assert r.distributions["c"]["attributes"]["choices"] == ["a", "b"]


def test_model_pickle_truncated(fixtures_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "best_trial"
    path.write_bytes(_bt(fixtures_dir, "trial_12_1h").read_bytes()[:500])
    with pytest.raises(ConfigError, match="truncated or not a valid pickle"):
        read_best_trial(path)


def test_model_pickle_not_a_trial(tmp_path: Path) -> None:
    path = tmp_path / "best_trial"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="does not contain an Optuna FrozenTrial"):
        read_best_trial(path)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def test_model_pickle_build_cannot_rewrite_admitted_functions() -> None:
    """BUILD on an admitted helper would setattr into a module-level function for the whole process."""
    from cappuccino_daemon.model import trial_pickle

    # copyreg._reconstructor, then BUILD with slot state {"__name__": "z"}.
    data = (
        b"\x80\x02"
        + _global("copyreg", "_reconstructor")
        + b"N}X\x08\x00\x00\x00__name__X\x01\x00\x00\x00zs\x86b."
    )
    with pytest.raises(ConfigError, match="Refused to load"):
        loads_trial(data, Path("/m/best_trial"))
    assert trial_pickle._safe_reconstructor.__name__ == "_safe_reconstructor"
    assert trial_pickle._latin1_encode.__name__ == "_latin1_encode"


def test_model_pickle_overflowing_values_are_a_config_error() -> None:
    """datetime.timedelta(days=2**31-1) raises OverflowError inside the unpickler: no traceback."""
    data = b"\x80\x02" + _global("datetime", "timedelta") + b"J\xff\xff\xff\x7f\x85R."
    with pytest.raises(ConfigError, match=r"not a valid pickle.*OverflowError"):
        loads_trial(data, Path("/m/best_trial"))


def test_model_pickle_self_referencing_params_are_a_config_error() -> None:
    trial = optuna.trial.create_trial(value=1.0, params={}, distributions={})
    loop: dict[str, object] = {}
    loop["self"] = loop
    trial._user_attrs["loop"] = loop
    with pytest.raises(
        ConfigError, match="best_trial holds an Optuna FrozenTrial whose fields cannot be read"
    ):
        loads_trial(pickle.dumps(trial), Path("/m/best_trial"))


def test_model_pickle_values_of_the_wrong_type_are_a_config_error() -> None:
    trial = optuna.trial.create_trial(value=1.0)
    trial._values = ["not a number"]
    with pytest.raises(ConfigError, match=r"cannot be read.*ValueError"):
        loads_trial(pickle.dumps(trial), Path("/m/best_trial"))
