"""The ``videoespresso`` command line (Typer + Rich).

Thin by design: each command module parses options, builds objects and calls the library. Heavy
imports (torch, transformers) happen inside the commands so ``--help`` stays fast. User errors
(:class:`~videoespresso.errors.UserError`) print one clear message and exit with code 2.
"""

from __future__ import annotations

import sqlite3
import sys

import typer
from rich.text import Text

from .. import __version__
from ..errors import UserError, printable
from ._common import console, err_console

app = typer.Typer(
    name="videoespresso",
    help="VideoEspresso: build video chain-of-thought datasets, answer questions with core "
    "frames, and evaluate video models on the VideoEspresso benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"videoespresso {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """VideoEspresso toolkit."""


# Command modules register themselves on ``app`` when imported.
from . import config_cmd as _config_cmd  # noqa: E402,F401
from . import build_cmd as _build_cmd  # noqa: E402,F401
from . import bench_cmd as _bench_cmd  # noqa: E402,F401
from . import flops_cmd as _flops_cmd  # noqa: E402,F401
from . import ask_cmd as _ask_cmd  # noqa: E402,F401
from . import select_cmd as _select_cmd  # noqa: E402,F401
from . import serve_cmd as _serve_cmd  # noqa: E402,F401
from . import models_cmd as _models_cmd  # noqa: E402,F401
from . import frames_cmd as _frames_cmd  # noqa: E402,F401
from . import demo_cmd as _demo_cmd  # noqa: E402,F401
from . import compare_cmd as _compare_cmd  # noqa: E402,F401
from . import ui_cmd as _ui_cmd  # noqa: E402,F401
from . import export_cmd as _export_cmd  # noqa: E402,F401
from . import train_cmd as _train_cmd  # noqa: E402,F401
from . import lmms_cmd as _lmms_cmd  # noqa: E402,F401
from . import stats_cmd as _stats_cmd  # noqa: E402,F401
from . import synth_cmd as _synth_cmd  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning user errors into one clean message."""
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except UserError as exc:
        # The message names files and items from the user's disk: printed as text, one line.
        err_console.print(Text.assemble(("error:", "bold red"), f" {printable(exc)}"), highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except (OSError, sqlite3.Error) as exc:
        # A full disk, a read-only mount, an output path that is a file: the user's machine,
        # not a bug. Everything written so far is durable; a rerun resumes.
        err_console.print(Text.assemble(("error:", "bold red"), f" {printable(storage_error_line(exc))}"), highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        usage_errors, aborts = _click_exception_types()
        if isinstance(exc, usage_errors):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, aborts):
            sys.exit(1)
        raise


def storage_error_line(exc: BaseException) -> str:
    """One line for a file-system or SQLite error: the path, the reason, what to do."""
    if isinstance(exc, OSError):
        where = exc.filename or ""
        if exc.filename2:
            where = f"{where} -> {exc.filename2}"
        reason = exc.strerror or str(exc)
        line = f"{where}: {reason}" if where else reason
    else:
        line = f"SQLite store: {exc}"
    if "full" in line.lower() or getattr(exc, "errno", None) == 28:
        line += " (free some space and rerun: finished work is kept)"
    return line


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's usage-error and abort classes, from click and from the copy newer typers bundle."""
    import click

    usage: list[type] = [click.exceptions.ClickException]
    aborts: list[type] = [click.exceptions.Abort]
    try:  # typer >= 0.26 vendors click as typer._click, whose classes are distinct
        from typer._click import exceptions as bundled  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        usage.append(bundled.ClickException)
        if hasattr(bundled, "Abort"):
            aborts.append(bundled.Abort)
    return tuple(usage), tuple(aborts)
