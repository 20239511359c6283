"""Typed errors.

Every error a user can cause by giving bad input derives from :class:`UserError`: the CLI prints
its message (which names the item and the problem) and exits with code 2, without a traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VideoEspressoError(Exception):
    """Base class of all errors raised on purpose by videoespresso."""


class UserError(VideoEspressoError):
    """Bad input from the user: a wrong spec, a missing file, a malformed data file."""


class ConfigError(UserError):
    """An invalid configuration file, profile or option."""


class SpecError(UserError):
    """A model spec string that cannot be parsed or names an unknown backend."""


class CheckpointNotFoundError(UserError):
    """A local checkpoint folder or hub repository that cannot be found or loaded."""


class EndpointError(UserError):
    """An HTTP model endpoint that refuses the connection, times out or answers with an error."""


class EndpointDownError(EndpointError):
    """An endpoint's circuit breaker opened: too many consecutive requests could not reach it.

    Runs stop on it (instead of failing every remaining item one timeout at a time); what was
    written stays and a rerun resumes. ``completed`` keeps the replies of the batch in flight
    that did arrive, as :class:`~videoespresso.models.openai_backend.BatchEndpointError` does.
    """

    def __init__(self, message: str, completed: list | None = None) -> None:
        super().__init__(message)
        self.completed = completed


class FormatError(UserError):
    """A data file (benchmark, train JSON, predictions) that does not have the expected shape."""


class StructuredOutputError(VideoEspressoError):
    """A model reply that does not validate against the JSON schema it was asked for.

    ``reply`` keeps the raw text so that it can be recorded with the failure.
    """

    def __init__(self, message: str, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply


class VideoError(UserError):
    """Base class of video decoding and probing errors (see :mod:`videoespresso.video`)."""


def printable(text: object) -> str:
    """``text`` safe to print on one line: control and other non-printable characters escaped.

    Names come from the user's disk and files (a file name may hold a newline, an escape
    sequence or an undecodable byte); printed raw, one would split a failure line in two or
    rewrite the terminal. Every message that shows a name passes it through here.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
