"""actor.pth reading: shapes of every public checkpoint, exact actions, and every refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.actor import load_policy
from cappuccino_daemon.model.checkpoint import infer_lookback, lookback_or_refuse, read_checkpoint

EXPECTED = {
    "trial_3358_1h": (1984, 239, 7, 3),
    "trial_12_1h": (256, 239, 7, 3),
    "trial_7_1h": (128, 37, 3, 1),
}


def _trial(fixtures_dir: Path, name: str) -> Path:
    return fixtures_dir / "train_results" / "cwd_tests" / name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_checkpoint_shapes(fixtures_dir: Path, name: str) -> None:
    info = read_checkpoint(_trial(fixtures_dir, name))
    net, state, action, lookback = EXPECTED[name]
    assert (info.net_dim, info.state_dim, info.action_dim, info.n_hidden_layers) == (net, state, action, 2)
    assert info.algorithm == "ppo"
    assert lookback_or_refuse(info) == lookback
    assert len(info.sha256) == 64


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_actions_match_upstream(fixtures_dir: Path, name: str) -> None:
    policy = load_policy(_trial(fixtures_dir, name))
    check = np.load(_trial(fixtures_dir, name) / "actions_check.npz")
    rowwise = np.stack([policy.act(s) for s in check["states"]])
    assert rowwise.dtype == np.float32
    assert np.max(np.abs(rowwise - check["actions_rowwise"])) <= 1e-6
    assert np.max(np.abs(policy.act_batch(check["states"]) - check["actions"])) <= 1e-6
    assert (
        np.max(np.abs(np.stack([policy.pre_tanh(s) for s in check["states"][:4]]) - check["pre_tanh"][:4]))
        <= 1e-5
    )


def test_model_snapshot_is_not_actor(fixtures_dir: Path, tmp_path: Path) -> None:
    """A folder with only an evaluator snapshot is refused, and the message says how to opt in."""
    src = _trial(fixtures_dir, "trial_12_1h")
    shutil.copy(src / "actor_00000762_00000.213.pth", tmp_path / "actor_00000762_00000.213.pth")
    with pytest.raises(ConfigError) as err:
        read_checkpoint(tmp_path)
    text = str(err.value)
    assert str(tmp_path / "actor.pth") in text and "actor_00000762_00000.213.pth" in text
    assert "random" in text and "Fix" in text


def test_model_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_checkpoint(tmp_path / "nope")


def test_model_truncated_checkpoint(fixtures_dir: Path, tmp_path: Path) -> None:
    data = (_trial(fixtures_dir, "trial_7_1h") / "actor.pth").read_bytes()
    (tmp_path / "actor.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as err:
        read_checkpoint(tmp_path)
    assert "truncated" in str(err.value) and str(tmp_path / "actor.pth") in str(err.value)
    assert "Fix" in str(err.value)


def test_model_empty_and_junk_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "actor.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        read_checkpoint(tmp_path)
    (tmp_path / "actor.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ConfigError, match="corrupt or not a torch checkpoint"):
        read_checkpoint(tmp_path)


def test_model_whole_module_refused_without_executing(tmp_path: Path) -> None:
    module = torch.nn.Sequential(torch.nn.Linear(37, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    torch.save(module, tmp_path / "actor.pth")
    with pytest.raises(ConfigError) as err:
        read_checkpoint(tmp_path)
    text = str(err.value)
    assert "pickled Python object" in text and "torch.nn.modules.container.Sequential" in text
    assert "state_dict" in text and str(tmp_path / "actor.pth") in text


def test_model_elegantrl_act_pth_hint(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "act.pth")
    with pytest.raises(ConfigError, match="current-ElegantRL whole-module"):
        read_checkpoint(tmp_path)


def _save(tmp_path: Path, sd: dict[str, torch.Tensor]) -> Path:
    torch.save(sd, tmp_path / "actor.pth")
    return tmp_path


def _ppo(state: int = 37, net: int = 16, action: int = 3) -> dict[str, torch.Tensor]:
    return {
        "net.0.weight": torch.zeros(net, state),
        "net.0.bias": torch.zeros(net),
        "net.2.weight": torch.zeros(net, net),
        "net.2.bias": torch.zeros(net),
        "net.4.weight": torch.zeros(action, net),
        "net.4.bias": torch.zeros(action),
        "a_std_log": torch.zeros(1, action),
    }


def test_model_sac_layout_refused(tmp_path: Path) -> None:
    sd = {"net_state.0.weight": torch.zeros(8, 37), "net_a_avg.0.weight": torch.zeros(3, 8)}
    with pytest.raises(ConfigError) as err:
        read_checkpoint(_save(tmp_path, sd))
    assert "SAC" in str(err.value) and "Fix" in str(err.value)


def test_model_ddpg_layout_refused(tmp_path: Path) -> None:
    sd = _ppo()
    del sd["a_std_log"]
    sd["net.6.weight"], sd["net.6.bias"] = torch.zeros(3, 3), torch.zeros(3)
    sd["net.4.weight"], sd["net.4.bias"] = torch.zeros(3, 16), torch.zeros(3)
    with pytest.raises(ConfigError, match="DDPG/TD3"):
        read_checkpoint(_save(tmp_path, sd))


def test_model_nan_weights_refused(tmp_path: Path) -> None:
    sd = _ppo()
    sd["net.2.bias"][0] = float("nan")
    with pytest.raises(ConfigError, match="not finite"):
        read_checkpoint(_save(tmp_path, sd))


def test_model_optimizer_state_refused(fixtures_dir: Path, tmp_path: Path) -> None:
    shutil.copy(_trial(fixtures_dir, "trial_12_1h") / "act_optim.pth", tmp_path / "actor.pth")
    with pytest.raises(ConfigError, match="not a state_dict of tensors"):
        read_checkpoint(tmp_path)


def test_model_non_integer_lookback_refused(tmp_path: Path) -> None:
    info = read_checkpoint(_save(tmp_path, _ppo(state=1 + 7 + 7 * 14 * 2, action=7)))
    with pytest.raises(ConfigError) as err:
        lookback_or_refuse(info)
    text = str(err.value)
    assert "not an integer" in text and "14 features x lookback 2" in text


def test_model_infer_lookback() -> None:
    assert infer_lookback(239, 7) == 3
    assert infer_lookback(37, 3) == 1
    assert infer_lookback(238, 7) is None
    assert infer_lookback(8, 7) is None


def test_model_policy_rejects_wrong_state_shape(fixtures_dir: Path) -> None:
    policy = load_policy(_trial(fixtures_dir, "trial_7_1h"))
    with pytest.raises(ValueError, match="does not match"):
        policy.act(np.zeros(36, dtype=np.float32))
    out = policy.act(np.zeros(37, dtype=np.float64))  # cast, not refused
    assert out.shape == (3,) and out.dtype == np.float32 and np.all(np.abs(out) <= 1)
