"""``cappuccino-paper init [DIR]``: the first start, a commented default config plus state/ and logs/.

The default text ships as package data (``default_daemon.toml``), so an installed wheel can create a
project anywhere; it is the same text as the checkout's ``config/daemon.toml`` (a test asserts byte
equality: edit the repository file and copy it over). An existing config is never overwritten without
``--force``: it is the one file a user edits.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from cappuccino_daemon.errors import ConfigError

DEFAULT_CONFIG_RESOURCE = "default_daemon.toml"


def default_config_text() -> bytes:
    """The commented default ``config/daemon.toml`` shipped with the package."""
    return resources.files("cappuccino_daemon").joinpath(DEFAULT_CONFIG_RESOURCE).read_bytes()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write the commented default config/daemon.toml plus state/ and logs/",
        description="First start: create DIR/config/daemon.toml (the commented default), DIR/state and "
        "DIR/logs. An existing config is kept unless --force is given.",
    )
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="project folder (default: .)")
    p.add_argument("--force", action="store_true", help="replace an existing config/daemon.toml")
    p.set_defaults(handler=_run_init)


def init_project(folder: Path, *, force: bool = False) -> Path:
    """Create the project layout under ``folder``; returns the config path. Problems are ``ConfigError``."""
    from cappuccino_daemon.atomic import atomic_write_bytes

    config = folder / "config" / "daemon.toml"
    if config.is_dir():
        raise ConfigError(f"{config} is a directory; move it away, then run `cappuccino-paper init` again.")
    if config.exists() and not force:
        raise ConfigError(
            f"{config} already exists; init keeps it. Check it with `cappuccino-paper validate --config "
            f"{config}`, or replace it with the default (your edits are lost) with `cappuccino-paper init "
            f"{folder} --force`."
        )
    try:
        for sub in (config.parent, folder / "state", folder / "logs"):
            sub.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(config, default_config_text())
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the project in {folder}: {exc.strerror or exc} ({exc.filename or folder}). "
            "Pick a writable folder, e.g. `cappuccino-paper init ~/cappuccino`."
        ) from None
    return config


def _run_init(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    config = init_project(folder, force=args.force)
    cd = "" if folder == Path(".") else f"cd {folder} && "
    print(
        f"Wrote {config} and created {folder / 'state'} and {folder / 'logs'}. Next: "
        f"`{cd}cappuccino-paper demo` (the demo model the default config serves), then "
        "`cappuccino-paper validate` and `cappuccino-paper run`. Edit config/daemon.toml to serve your "
        "own model."
    )
    return 0
