"""Helpers shared by the command modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def _console(stderr: bool = False) -> Console:
    # Piped or redirected output is read by programs and people grepping logs: Rich would wrap
    # it at 80 columns, splitting paths and error messages over lines. Text is then never
    # wrapped and tables get room (COLUMNS still wins when set).
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = 240 if piped and "COLUMNS" not in os.environ else None
    return Console(stderr=stderr, soft_wrap=piped, width=width)


console = _console()
err_console = _console(stderr=True)

ProfileOption = typer.Option(
    None, "--profile", "-p", help="Named profile: 'offline' (no hub: SmolLM2 writes the text, the vision models "
    "have random weights), 'tiny' (every model random-weight: plumbing only) or 'paper' (the paper's models)."
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


def note_random_weights(roles: dict[str, str]) -> bool:
    """Say which of the models a command uses have random weights (``tiny:`` checkpoints, and
    adapters or merged checkpoints trained from one: :func:`~videoespresso.models.registry.random_weights`).

    Their output is random text: a run with them proves plumbing, not quality, and every command
    says so, as ``demo`` does. ``roles`` maps a role ("reasoner") to its spec. Returns whether
    any was random.
    """
    from ..models.registry import random_weights

    random = sorted({f"{role} ({spec})" for role, spec in roles.items() if spec and random_weights(str(spec))})
    if random:
        err_console.print(
            f"[yellow]random-weight models: {', '.join(random)}; their output is random text "
            "(this run proves the pipeline, not quality)[/]",
            highlight=False,
        )
    return bool(random)
