"""The SQLite store of per-item stage results: the run's manifest and its resume point.

One row per (stage, version, prompt hash, params hash, input hash): the outputs the stage made
from that input, or why it failed or dropped it (with the raw model reply, when there was one).
The file is in WAL mode and every batch is written in one transaction right after the stage
returns, so a killed run loses at most the batch in flight and never leaves a half-written row;
a rerun reads the rows back instead of calling the stage again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import UserError
from .stage import Item

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    version TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    item_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'dropped', 'failed', 'error')),
    outputs TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    raw TEXT,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_stage ON results (stage, status);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    summary TEXT
);
"""

#: Statuses a rerun accepts as finished; an ``error`` (an exception) is retried.
DONE = ("ok", "dropped", "failed")


@dataclass(frozen=True)
class ResultKey:
    stage: str
    version: str
    prompt_hash: str
    params_hash: str
    input_hash: str

    @property
    def key(self) -> str:
        return "|".join(
            (self.stage, self.version, self.prompt_hash, self.params_hash, self.input_hash)
        )


@dataclass
class StoredResult:
    key: str
    stage: str
    item_id: str
    status: str
    outputs: list[Item]
    reason: str | None = None
    detail: str | None = None
    raw: str | None = None
    seconds: float = 0.0


class Store:
    """Per-item stage results in one SQLite file. Safe to read while another process writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (the WAL is in the OS); only power loss
            # can drop the last transactions.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise UserError(f"{self.path}: cannot open the store: {exc} (is the folder writable?)") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[ResultKey], statuses: tuple[str, ...] = DONE) -> dict[str, StoredResult]:
        """The stored results among ``keys`` whose status is one of ``statuses``."""
        wanted = [k.key for k in keys]
        found: dict[str, StoredResult] = {}
        marks = ",".join("?" * len(statuses))
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT key, stage, item_id, status, outputs, reason, detail, raw, seconds "
                    f"FROM results WHERE key IN ({','.join('?' * len(chunk))}) AND status IN ({marks})",
                    (*chunk, *statuses),
                ).fetchall()
                for row in rows:
                    found[row[0]] = _result(row)
        return found

    def put_many(self, results: list[tuple[ResultKey, StoredResult]]) -> None:
        """Write the results of one batch atomically."""
        now = time.time()
        rows = [
            (
                k.key, k.stage, k.version, k.prompt_hash, k.params_hash, k.input_hash,
                r.item_id, r.status, json.dumps(r.outputs, ensure_ascii=False),
                r.reason, r.detail, r.raw, r.seconds, now,
            )
            for k, r in results
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO results (key, stage, version, prompt_hash, params_hash, "
                    "input_hash, item_id, status, outputs, reason, detail, raw, seconds, created) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def results(self, stage: str | None = None, status: str | None = None) -> Iterator[StoredResult]:
        """Every stored result, optionally of one stage and/or one status, oldest first."""
        sql = "SELECT key, stage, item_id, status, outputs, reason, detail, raw, seconds FROM results"
        where, args = [], []
        if stage is not None:
            where.append("stage = ?")
            args.append(stage)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created, rowid", args).fetchall()
        for row in rows:
            yield _result(row)

    def counts(self) -> dict[str, dict[str, int]]:
        """stage -> status -> number of stored rows."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._conn.execute("SELECT stage, status, COUNT(*) FROM results GROUP BY stage, status").fetchall()
        for stage, status, n in rows:
            out.setdefault(stage, {})[status] = n
        return out

    def versions(self) -> dict[str, set[str]]:
        """stage -> the stage versions that have stored rows."""
        out: dict[str, set[str]] = {}
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT stage, version FROM results").fetchall()
        for stage, version in rows:
            out.setdefault(stage, set()).add(version)
        return out

    def start_run(self) -> int:
        with self._lock:
            cur = self._conn.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                (time.time(), json.dumps(summary), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT id, started, finished, summary FROM runs ORDER BY id").fetchall()
        return [
            {"id": r[0], "started": r[1], "finished": r[2], "summary": json.loads(r[3]) if r[3] else None}
            for r in rows
        ]


def _result(row: tuple[Any, ...]) -> StoredResult:
    return StoredResult(
        key=row[0], stage=row[1], item_id=row[2], status=row[3], outputs=json.loads(row[4]),
        reason=row[5], detail=row[6], raw=row[7], seconds=row[8],
    )
