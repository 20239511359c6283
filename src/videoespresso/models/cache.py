"""A response cache for generation backends: one SQLite file, safe across processes.

A reply is stored under the sha256 of (backend spec, generation settings, JSON-schema hash,
conversation hash); images enter the conversation hash by mode, size and pixel bytes, so the
same frame decoded twice hits and a re-encoded (changed) frame misses. Only deterministic calls
(:attr:`GenerationSettings.deterministic`: greedy, or sampled with a seed) are cached.

The file is in WAL mode: readers never block the writer, several processes may share it, and
each finished batch is committed at once, so a killed process loses at most the call in flight.
Nothing secret enters a key or a row: specs carry no API key, and neither do the records.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import StructuredOutputError
from ..schema import Generation, GenerationSettings
from .protocols import Conversation, JsonSchema, check_text

#: Bump when the key recipe or the stored row format changes: old rows then simply miss.
KEY_VERSION = 1

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    generation TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def conversation_hash(conversation: Conversation) -> str:
    """sha256 over roles, texts and image pixels (mode + size + raw bytes) of one conversation."""
    digest = hashlib.sha256()
    for turn in conversation:
        digest.update(b"\x00turn\x00")
        digest.update(turn.role.encode("utf-8"))
        digest.update(b"\x00")
        digest.update(turn.text.encode("utf-8"))
        for image in turn.images:
            digest.update(b"\x00image\x00")
            digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}".encode("ascii"))
            digest.update(image.tobytes())
        video = getattr(turn, "video", None)
        if video is not None:
            # A video and the same frames as images reach the model differently: other keys.
            digest.update(f"\x00video\x00{video.fps!r}:{video.total_frames}:{video.indices}".encode("ascii"))
            for frame in video.frames:
                digest.update(f"{frame.mode}:{frame.size[0]}x{frame.size[1]}".encode("ascii"))
                digest.update(frame.tobytes())
    return digest.hexdigest()


def schema_hash(schema: JsonSchema | None) -> str:
    """sha256 of the canonical JSON of a schema (pydantic class or dict); "" for no schema."""
    if schema is None:
        return ""
    from .structured import schema_to_json

    # Not sort_keys: the order of properties is the order the grammar writes them in, so two
    # schemas that differ only in order give different replies.
    text = json.dumps(schema_to_json(schema), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def settings_json(settings: GenerationSettings) -> str:
    return json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def cache_key(
    spec: str,
    settings: GenerationSettings,
    conversation: Conversation,
    schema: JsonSchema | None = None,
    *,
    schema_digest: str | None = None,
) -> str:
    """The cache key of one call. ``schema_digest`` skips re-hashing a schema used for a batch."""
    parts = {
        "v": KEY_VERSION,
        "spec": spec,
        "settings": settings_json(settings),
        "schema": schema_hash(schema) if schema_digest is None else schema_digest,
        "conversation": conversation_hash(conversation),
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Model replies in one SQLite file (WAL mode), keyed by :func:`cache_key`.

    Thread-safe within a process and safe across processes. ``hits`` and ``misses`` count this
    object's lookups. A forked child reopens its own connection on first use.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process in WAL mode (only power loss can drop
            # the last commits), and far faster than FULL.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA_SQL)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    # ------------------------------------------------------------------ rows

    def get(self, key: str) -> Generation | None:
        """The stored reply for ``key`` (marked ``cached=True``), or ``None``."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Generation | None]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            conn = self._connect()
            # SQLite limits bound parameters per statement; 500 stays far below every default.
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, generation FROM responses WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update(rows)
            out: list[Generation | None] = []
            for key in keys:
                row = found.get(key)
                if row is None:
                    self.misses += 1
                    out.append(None)
                else:
                    self.hits += 1
                    generation = Generation.model_validate_json(row)
                    generation.cached = True
                    out.append(generation)
        return out

    def put(self, key: str, generation: Generation) -> None:
        self.put_many([(key, generation)])

    def put_many(self, items: Iterable[tuple[str, Generation]]) -> None:
        """Store replies in one transaction (all or none)."""
        rows = [
            (key, gen.model, gen.model_copy(update={"cached": False}).model_dump_json(), time.time())
            for key, gen in items
        ]
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, spec, generation, created) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """Entries in the file, this object's hits/misses and hit rate, and the file's size."""
        lookups = self.hits + self.misses
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"))
            if p.exists()
        )
        return {
            "path": str(self.path),
            "entries": len(self),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / lookups if lookups else 0.0,
            "size_bytes": size,
        }

    def clear(self) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM responses")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"


class CachedModel:
    """A generation backend whose deterministic replies are answered from a :class:`ResponseCache`.

    ``generate`` looks every conversation up, sends only the misses to the backend (in one
    batched call, each distinct conversation once), stores the new replies and returns all of
    them in order, hits marked ``cached=True``. Any other attribute is the backend's.
    """

    def __init__(self, backend: Any, cache: ResponseCache) -> None:
        self._backend = backend
        self._cache = cache

    @property
    def backend(self) -> Any:
        return self._backend

    @property
    def cache(self) -> ResponseCache:
        return self._cache

    @property
    def spec(self) -> str:
        return self._backend.spec

    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generation]:
        """The backend's ``generate`` with hits served from the cache.

        ``should_stop`` goes to backends that take it; replies it cut short are not stored.
        """
        settings = settings or GenerationSettings()
        conversations = list(conversations)
        options: dict[str, Any] = {}
        if should_stop is not None and "should_stop" in inspect.signature(self._backend.generate).parameters:
            options["should_stop"] = should_stop
        if not settings.deterministic:
            return self._backend.generate(conversations, settings, schema, **options)
        check_text(conversations)
        digest = schema_hash(schema)
        # A local checkpoint folder's replies are keyed on its weights too (``weights_stamp``):
        # retraining into the same folder must not serve the old model's replies.
        stamp = getattr(self._backend, "weights_stamp", None)
        identity = f"{self.spec}#{stamp}" if stamp else self.spec
        keys = [
            cache_key(identity, settings, conv, schema_digest=digest) for conv in conversations
        ]
        results = self._cache.get_many(keys)
        if schema is not None:
            results = [_revalidate(g, schema) if g is not None else None for g in results]

        first_miss: dict[str, int] = {}
        for index, (key, found) in enumerate(zip(keys, results)):
            if found is None:
                first_miss.setdefault(key, index)
        if first_miss:
            miss_indices = list(first_miss.values())
            try:
                fresh = self._backend.generate(
                    [conversations[i] for i in miss_indices], settings, schema, **options
                )
            except Exception as exc:
                # Keep what the backend did finish (see BatchEndpointError) before failing.
                completed = getattr(exc, "completed", None)
                if isinstance(completed, list) and len(completed) == len(miss_indices):
                    self._cache.put_many(
                        (keys[i], g) for i, g in zip(miss_indices, completed) if g is not None
                    )
                raise
            if len(fresh) != len(miss_indices):
                raise RuntimeError(
                    f"{self.spec}: backend returned {len(fresh)} replies for {len(miss_indices)} "
                    "conversations"
                )
            if not (options and should_stop is not None and should_stop()):
                self._cache.put_many((keys[i], g) for i, g in zip(miss_indices, fresh))
            by_key = {keys[i]: g for i, g in zip(miss_indices, fresh)}
            for index, key in enumerate(keys):
                if results[index] is None:
                    generation = by_key[key]
                    # A duplicate of a conversation sent in this batch counts as a hit.
                    results[index] = (
                        generation
                        if first_miss[key] == index
                        else generation.model_copy(update={"cached": True})
                    )
        return [g for g in results if g is not None]

    def __getattr__(self, name: str) -> Any:
        if name in ("_backend", "_cache"):
            raise AttributeError(name)
        return getattr(self._backend, name)

    def __repr__(self) -> str:
        return f"CachedModel({self._backend!r}, {self._cache!r})"


def _revalidate(generation: Generation, schema: JsonSchema) -> Generation:
    """Rebuild ``parsed`` from the stored text, so a hit carries the same type as a fresh reply."""
    from .structured import validate_reply

    try:
        parsed = validate_reply(generation.text, schema)
    except StructuredOutputError as exc:
        return generation.model_copy(update={"parsed": None, "error": generation.error or str(exc)})
    return generation.model_copy(update={"parsed": parsed, "error": None})
