"""``videoespresso config``: show or write the effective configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import ConfigOption, ProfileOption, console, effective_config


@app.command("config")
def config_command(
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the YAML here instead of printing it."),
) -> None:
    """Print the effective configuration (a profile plus an optional YAML file).

    Example: videoespresso config --profile paper --out my.yaml
    """
    cfg = effective_config(profile, config, out)
    if out is None:
        console.print(cfg.to_yaml(), highlight=False, markup=False)
