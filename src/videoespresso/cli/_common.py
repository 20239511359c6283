"""Helpers shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

ProfileOption = typer.Option(
    None, "--profile", "-p", help="Named profile: 'offline' (tiny models, no hub) or 'paper'."
)
ConfigOption = typer.Option(
    None, "--config", "-c", exists=False, help="YAML config merged over the profile."
)
DumpConfigOption = typer.Option(
    None, "--dump-config", help="Write the effective config to this YAML file and continue."
)


def effective_config(profile: Optional[str], config: Optional[Path], dump: Optional[Path] = None):
    """Load the config the user asked for and write it out when ``--dump-config`` is given."""
    from ..config import load_config

    cfg = load_config(profile, config)
    if dump is not None:
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_text(cfg.to_yaml(), encoding="utf-8")
        err_console.print(f"effective config written to {dump}")
    return cfg
