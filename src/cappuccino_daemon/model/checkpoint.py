"""Read ``actor.pth`` safely and describe it from its tensor shapes alone.

The tensor shapes are the only trustworthy description of a legacy checkpoint (trial params may
describe a different run than the one that saved the weights). Loading is
``torch.load(weights_only=True)`` only: a checkpoint is never unpickled with arbitrary code execution,
and a missing ``actor.pth`` is an error, never "random weights" as in the upstream loader.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from cappuccino_daemon.errors import ConfigError

ACTOR_FILE = "actor.pth"
N_FEATURES_DEFAULT = 11
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_END = b"PK\x05\x06"
_NET_WEIGHT = re.compile(r"^net\.(\d+)\.weight$")


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``actor.pth`` says about itself (architecture only; no trial params)."""

    path: Path
    sha256: str
    algorithm: str  # "ppo": the only layout we serve
    state_dim: int
    net_dim: int
    action_dim: int
    n_hidden_layers: int
    n_parameters: int
    state_dict: dict[str, torch.Tensor]

    @property
    def n_tickers(self) -> int:
        """A PPO actor emits one action per ticker."""
        return self.action_dim


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_not_folder(path: Path) -> str:
    """A model path that names a file: say which file it is and which folder to pass instead."""
    if path.name == ACTOR_FILE or path.suffix in {".pth", ".pt"}:
        what = "a checkpoint file, not the trial folder"
    elif path.name in {"best_trial", "cappuccino_manifest.json"}:
        what = "a trial metadata file, not the trial folder"
    else:
        what = "a file, not a trial folder"
    return (
        f"Model path {path} is {what}. The model is the whole folder (actor.pth plus its "
        f"cappuccino_manifest.json or best_trial). Fix: pass the folder that holds it, e.g. --model-dir "
        f'{path.parent} (or [model] dir = "{path.parent}" in config/daemon.toml; for inspect: '
        f"`cappuccino-paper inspect {path.parent}`)."
    )


def actor_path(model_dir: Path) -> Path:
    """``model_dir/actor.pth`` or a ConfigError that says what the folder holds instead."""
    model_dir = Path(model_dir)
    if model_dir.is_file():
        raise ConfigError(_file_not_folder(model_dir))
    if not model_dir.is_dir():
        raise ConfigError(
            f"Model folder {model_dir} does not exist or is not a directory. Point --model-dir (or "
            "[model] dir in config/daemon.toml) at a trial folder such as "
            "train_results/cwd_tests/trial_3358_1h that contains actor.pth."
        )
    path = model_dir / ACTOR_FILE
    if path.is_file():
        return path
    present = sorted(p.name for p in model_dir.iterdir() if p.suffix in {".pth", ".pt"})
    hint = ""
    snapshots = [n for n in present if n.startswith("actor_")]
    if snapshots:
        hint += (
            f" The folder has evaluator snapshots ({', '.join(snapshots[:3])}); they are NOT used "
            "automatically because they hold other weights than the final actor. If you really want one, "
            f"copy it: `cp {model_dir / snapshots[0]} {path}`."
        )
    if "act.pth" in present or "actor.pt" in present:
        hint += (
            " It has act.pth / actor.pt, the current-ElegantRL whole-module format, which this daemon does "
            "not load (it needs arbitrary code execution); export the actor's state_dict from the legacy "
            "ActorPPO instead."
        )
    raise ConfigError(
        f"{path} does not exist (folder contents: {', '.join(present) or 'no .pth files'}). The daemon "
        "refuses to run a model without its trained weights (the upstream loader would silently use random "
        f"weights).{hint} Fix: point --model-dir at the trial folder that contains actor.pth."
    )


def _diagnose_unreadable(path: Path, exc: BaseException) -> str:
    data_head = path.read_bytes()[:4] if path.stat().st_size else b""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    if data_head == _ZIP_MAGIC:
        with path.open("rb") as fh:
            fh.seek(max(0, size - 65_536))
            tail = fh.read()
        if _ZIP_END not in tail:
            return f"the file is truncated ({size} bytes; its zip archive has no end record)"
    return f"the file is corrupt or not a torch checkpoint ({type(exc).__name__}: {str(exc)[:160]})"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with refusals that explain the cause and the fix."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on legit files
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        head = path.read_bytes()[:2]
        if not found and head[:1] != b"\x80" and head != _ZIP_MAGIC[:2]:
            raise ConfigError(
                f"Cannot read {path}: {_diagnose_unreadable(path, exc)}. Fix: copy the checkpoint again "
                "from the training machine (compare its sha256 with `sha256sum actor.pth`)."
            ) from None
        what = f" (it references {found.group(1)})" if found else ""
        raise ConfigError(
            f"{path} is not a plain state_dict: it is a pickled Python object{what}, e.g. a whole "
            "nn.Module saved by current ElegantRL (act.pth) or torch.save(model). Loading it would need "
            "weights_only=False, which can execute arbitrary code, so the daemon refuses. Fix: in a trusted "
            "environment load it and save `torch.save(actor.state_dict(), 'actor.pth')` from a legacy "
            "ActorPPO (keys net.0/net.2/net.4 + a_std_log)."
        ) from None
    except (OSError, EOFError, KeyError, RuntimeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"Cannot read {path}: {_diagnose_unreadable(path, exc)}. Fix: copy the checkpoint again from "
            "the training machine (compare its sha256 with `sha256sum actor.pth`)."
        ) from None
    if not isinstance(obj, dict) or not obj:
        raise ConfigError(
            f"{path} holds a {type(obj).__name__}, not a state_dict of tensors. Fix: save the actor with "
            "`torch.save(actor.state_dict(), 'actor.pth')`."
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(
            f"{path} is not a state_dict of tensors (non-tensor entries: {', '.join(bad[:5])}). It may be an "
            "optimizer state (act_optim.pth) or another file renamed. Fix: use the actor's actor.pth."
        )
    return dict(obj)


def _layout_refusal(keys: set[str]) -> str | None:
    """A one-line reason when the keys are a known non-legacy-PPO layout."""
    if any(k.startswith(("net_state.", "net_a_avg.", "net_a_std.")) for k in keys):
        return "SAC actor layout (net_state / net_a_avg / net_a_std)"
    if "action_std_log" in keys:
        return "FinRL paper-trading ActorPPO (action_std_log, build_mlp), a different state/feature design"
    if "state_avg" in keys or "state_std" in keys:
        return "current-ElegantRL ActorPPO (state_avg/state_std normalisation inside the net)"
    if any(re.match(r"^net\.\d+\.\d+\.weight$", k) for k in keys):
        return "old 2021 FinRL/ElegantRL layout (nested net.0.0.weight keys)"
    return None


def _refuse(path: Path, reason: str) -> ConfigError:
    return ConfigError(
        f"{path} is not a legacy ElegantRL/FinRL_Crypto PPO actor: {reason}. This daemon serves only PPO "
        "actors with keys net.0/net.2/net.4 (Linear-ReLU-Linear-ReLU-Linear) and a_std_log of shape "
        "(1, action_dim). Fix: point --model-dir at a PPO trial folder (check with `cappuccino-paper "
        "inspect DIR`)."
    )


def describe_state_dict(path: Path, sd: dict[str, torch.Tensor]) -> tuple[str, int, int, int, int]:
    """(algorithm, state_dim, net_dim, action_dim, n_hidden_layers) inferred from tensor shapes."""
    keys = set(sd)
    reason = _layout_refusal(keys)
    if reason:
        raise _refuse(path, reason)
    layers = sorted(int(m.group(1)) for k in keys if (m := _NET_WEIGHT.match(k)))
    if len(layers) < 2:
        raise _refuse(path, f"no net.<i>.weight layers found (keys: {', '.join(sorted(keys)[:8])})")
    weights = [sd[f"net.{i}.weight"] for i in layers]
    if any(w.dim() != 2 for w in weights):
        raise _refuse(path, "a net.<i>.weight tensor is not a 2-D matrix")
    for i, (prev, cur) in enumerate(itertools.pairwise(weights)):
        if cur.shape[1] != prev.shape[0]:
            raise ConfigError(
                f"{path} is corrupt: layer net.{layers[i + 1]}.weight expects {cur.shape[1]} inputs but "
                f"net.{layers[i]}.weight produces {prev.shape[0]}. Fix: copy actor.pth again."
            )
    for i, w in zip(layers, weights, strict=True):
        b = sd.get(f"net.{i}.bias")
        if b is None or tuple(b.shape) != (w.shape[0],):
            raise ConfigError(f"{path} is corrupt: net.{i}.bias is missing or has the wrong shape.")
    state_dim, net_dim, action_dim = weights[0].shape[1], weights[0].shape[0], weights[-1].shape[0]
    n_hidden = len(weights) - 1
    std = sd.get("a_std_log")
    if std is None:
        kind = "DDPG/TD3 Actor (3 hidden layers)" if n_hidden == 3 else f"{n_hidden} hidden layers"
        raise _refuse(path, f"no a_std_log parameter, so not PPO ({kind})")
    if tuple(std.shape) != (1, action_dim):
        raise _refuse(path, f"a_std_log has shape {tuple(std.shape)}, expected (1, {action_dim})")
    if n_hidden != 2 or layers != [0, 2, 4]:
        raise _refuse(path, f"{n_hidden} hidden layers at net.{layers}; legacy ActorPPO has exactly 2")
    if any(w.shape[0] != net_dim for w in weights[:-1]):
        raise _refuse(path, "hidden layers of different widths (legacy ActorPPO uses one net_dimension)")
    extra = keys - {f"net.{i}.{p}" for i in layers for p in ("weight", "bias")} - {"a_std_log"}
    if extra:
        raise _refuse(path, f"unexpected keys {', '.join(sorted(extra)[:5])}")
    for k, v in sd.items():
        if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise ConfigError(
                f"{path} is corrupt: tensor {k} is not finite floating point (NaN/Inf or integer). "
                "Fix: copy actor.pth again or retrain; never trade on such weights."
            )
    return "ppo", int(state_dim), int(net_dim), int(action_dim), n_hidden


def read_checkpoint(model_dir: Path) -> CheckpointInfo:
    """Load and describe ``model_dir/actor.pth``; every failure is a ConfigError with the fix."""
    path = actor_path(Path(model_dir))
    sd = load_state_dict(path)
    algorithm, state_dim, net_dim, action_dim, n_hidden = describe_state_dict(path, sd)
    return CheckpointInfo(
        path=path,
        sha256=sha256_file(path),
        algorithm=algorithm,
        state_dim=state_dim,
        net_dim=net_dim,
        action_dim=action_dim,
        n_hidden_layers=n_hidden,
        n_parameters=sum(int(v.numel()) for v in sd.values()),
        state_dict=sd,
    )


def infer_lookback(state_dim: int, n_tickers: int, n_features: int = N_FEATURES_DEFAULT) -> int | None:
    """``(state_dim - 1 - n) / (n * k)`` when it is a positive integer, else None."""
    if n_tickers <= 0:
        return None
    rest = state_dim - 1 - n_tickers
    per_bar = n_tickers * n_features
    if rest <= 0 or rest % per_bar:
        return None
    return rest // per_bar


def lookback_or_refuse(info: CheckpointInfo, n_features: int = N_FEATURES_DEFAULT) -> int:
    """The lookback implied by the shapes, or a refusal that explains what else could fit."""
    n = info.n_tickers
    lookback = infer_lookback(info.state_dim, n, n_features)
    if lookback is not None:
        return lookback
    rest = info.state_dim - 1 - n
    alternatives = []
    for k in (7, 11, 14):
        lb = infer_lookback(info.state_dim, n, k)
        if lb is not None and k != n_features:
            alternatives.append(f"{k} features x lookback {lb}")
        lb_sent = infer_lookback(info.state_dim - 4 * n, n, k)
        if lb_sent is not None:
            alternatives.append(f"{k} features x lookback {lb_sent} + sentiment")
    alt = ""
    if alternatives:
        alt = f" It would fit {'; '.join(alternatives)}, a generation this daemon does not serve."
    raise ConfigError(
        f"{info.path}: state_dim {info.state_dim} does not decompose as 1 (cash) + {n} (holdings) + "
        f"{n} tickers x {n_features} features x lookback: "
        f"({info.state_dim} - 1 - {n}) / ({n} x {n_features}) "
        f"= {rest / (n * n_features):.3f} is not an integer.{alt} Only Nov-2025 Cappuccino / FinRL_Crypto "
        "actors with 11 features per ticker are supported. Fix: use a checkpoint of that generation."
    )
