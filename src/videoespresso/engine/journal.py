"""One resumable output: what ``eval``, ``select`` and ``judge`` each write and resume.

A run appends one JSON line per finished item, flushed and fsynced, so a killed run loses at
most the item in flight; a rerun reads the lines back and does only what is missing. The lines
go either to the output itself (``eval`` predictions, ``judge`` judgements) or to a side
journal ``<out>.partial.jsonl`` that is folded into a final file written at the end
(``select``).

:class:`Journal` does every step in one order, the only safe one:

1. take the output's lock (``<out>.lock``, :mod:`videoespresso.locking`) *first*: until it is
   held nothing is read, removed or written, so a second run (``--overwrite`` included) on an
   output another run is writing is refused before it touches that run's files;
2. with ``overwrite``, remove the output, its journal and its manifest;
3. cut a half-written last line (a run killed mid-write);
4. compare the run's settings with the manifest (:mod:`videoespresso.formats.manifest`),
   refusing a resume with other settings, and write the manifest.

Then the caller reads :meth:`records` / :meth:`ids`, drops failed attempts it will redo
(:meth:`drop_failed`), appends (:meth:`append`) and, at the end, puts the lines in their final
order with one atomic rewrite (:meth:`reorder`) or folds a side journal away
(:meth:`discard_journal`). The lock is released when the ``with`` block ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import UserError


def _has_error(record: Mapping[str, Any]) -> bool:
    return bool(record.get("error"))


def repair_tail(path: Path) -> bool:
    """Cut a half-written last line (a run killed mid-write); True when something was cut."""
    if not path.is_file():
        return False
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return False
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            handle.seek(start)
            data = handle.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                handle.truncate(start + nl + 1)
                break
            pos = start
        else:
            handle.truncate(0)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def read_records(path: Path) -> list[dict[str, Any]]:
    """The valid lines of a journal: JSON objects with a string ``id``, in file order."""
    from ..formats.jsonl import read_jsonl

    if not path.is_file():
        return []
    return [obj for _, obj, error in read_jsonl(path)
            if error is None and isinstance(obj, dict) and isinstance(obj.get("id"), str)]


def finished_ids(path: Path, *, include_failed: bool = True,
                 failed: Callable[[Mapping[str, Any]], bool] = _has_error) -> set[str]:
    """Ids with a line in ``path``; those whose line is a failed attempt only if asked."""
    return {r["id"] for r in read_records(path) if include_failed or not failed(r)}


class Journal:
    """``with Journal(out, what, ...) as journal:``: one resumable output, locked for the block.

    ``what`` names the output in messages ("predictions file"). With ``settings`` (and
    ``kind``: "eval", "select", "judge") the run's manifest is checked and written; without,
    none is kept (library callers that manage no manifest). ``legacy_settings(out)`` reads the
    settings of an output written before manifests existed. ``sidecar`` puts the lines in
    ``<out>.partial.jsonl`` instead of ``out`` itself. ``failed(record)`` says whether a line
    is a failed attempt (default: it has a non-empty ``error``).
    """

    def __init__(
        self,
        out: Path,
        what: str,
        *,
        kind: str | None = None,
        settings: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        legacy_settings: Callable[[Path], Mapping[str, Any] | None] | None = None,
        sidecar: bool = False,
        failed: Callable[[Mapping[str, Any]], bool] = _has_error,
    ) -> None:
        if settings is not None and kind is None:
            raise ValueError("a Journal with settings needs the kind of run")
        self.out = Path(out)
        self.what = what
        self.kind = kind
        self.settings = settings
        self.overwrite = overwrite
        self.legacy_settings = legacy_settings
        self.path = journal_path(self.out) if sidecar else self.out
        self.lock_path = self.out.with_name(self.out.name + ".lock")
        self.failed = failed
        #: Whether opening cut a half-written last line.
        self.repaired_tail = False
        #: "new", "resumed" or "overwritten" (None without settings).
        self.state: str | None = None
        self._lock: Any = None

    # ------------------------------------------------------------------ open / close

    def __enter__(self) -> "Journal":
        from ..locking import OutputLock

        if self.out.is_dir():
            raise UserError(f"--out {self.out} is a folder; give the path of a {self.what}")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(self.lock_path, f"{self.what} {self.out}")
        lock.__enter__()
        self._lock = lock
        try:
            self._open()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def _open(self) -> None:
        from ..formats.manifest import check_resume, manifest_path

        if self.overwrite:
            for path in {self.out, self.path, manifest_path(self.out)}:
                path.unlink(missing_ok=True)
        self.repaired_tail = repair_tail(self.path)
        if self.settings is None:
            return
        has_output = self.has_output()
        legacy = self.legacy_settings(self.out) if (has_output and self.legacy_settings is not None) else None
        self.state = check_resume(self.out, self.kind or "", self.settings, has_output=has_output,
                                  overwrite=self.overwrite, legacy_settings=legacy)

    def has_output(self) -> bool:
        """Whether the output (or its side journal) already holds results."""
        def non_empty(path: Path) -> bool:
            return path.is_file() and path.stat().st_size > 0

        return non_empty(self.out) or (self.path != self.out and self.path.is_file())

    # ------------------------------------------------------------------ reading

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path)

    def ids(self, *, include_failed: bool = True) -> set[str]:
        return finished_ids(self.path, include_failed=include_failed, failed=self.failed)

    # ------------------------------------------------------------------ writing

    def append(self, record: Mapping[str, Any]) -> None:
        """One durable line (flushed and fsynced before this returns)."""
        from ..formats.jsonl import append_jsonl

        append_jsonl(self.path, dict(record))

    def drop_failed(self, wanted: Iterable[str]) -> set[str]:
        """Remove the failed attempts of the ``wanted`` ids (atomically), to be appended again;
        returns their ids. Failed lines of other ids, and unreadable lines, are kept."""
        from ..formats.jsonl import write_text_atomic

        if not self.path.is_file():
            return set()
        wanted = set(wanted)
        kept: list[str] = []
        dropped: set[str] = set()
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                obj = _loads(line)
                if isinstance(obj, dict) and obj.get("id") in wanted and self.failed(obj):
                    dropped.add(obj["id"])
                else:
                    kept.append(line)
        if dropped:
            write_text_atomic(self.path, "".join(kept))
        return dropped

    def reorder(self, order: Sequence[str]) -> None:
        """Rewrite the lines (atomically) sorted by their id's place in ``order``, so a resumed
        file reads like an uninterrupted run's; lines of other ids keep their place before them."""
        from ..formats.jsonl import write_text_atomic

        rank = {item_id: i for i, item_id in enumerate(order)}
        lines = self.path.read_text("utf-8").splitlines(keepends=True)

        def key(line: str) -> int:
            obj = _loads(line)
            return rank.get(obj.get("id"), -1) if isinstance(obj, dict) else -1

        ordered = sorted(lines, key=key)
        if ordered != lines:
            write_text_atomic(self.path, "".join(ordered))

    def discard_journal(self) -> None:
        """The final file is written: the side journal is no longer needed."""
        if self.path != self.out:
            self.path.unlink(missing_ok=True)


def journal_path(out: Path) -> Path:
    """Where a side journal of ``out`` lives."""
    return out.with_name(out.name + ".partial.jsonl")


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None
