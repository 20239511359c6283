"""The CLI run in the test process (models loaded once per session), as a user runs it."""

from __future__ import annotations

from typing import NamedTuple


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(capsys, argv: list[str]) -> CliResult:
    """Exit code, stdout and stderr of ``videoespresso ARGV`` run in this process."""
    from videoespresso.cli import main

    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
