"""The stage contract: what an executor runs, and nothing about how it is run.

An *item* is a JSON-serialisable ``dict`` with a string ``"id"``. A stage maps a batch of items
to a batch of items (N in, M out). Every output names the input it came from in ``"_from"``
(:func:`derive` sets it), so the executor can store outputs per input and skip finished inputs on
a rerun. An input may end in three ways:

* outputs (zero outputs means the input was filtered out without comment);
* :func:`dropped` -- filtered out *with* a reason (a judge rejection, a too-short video);
* :func:`failed` -- bad input or an unusable model reply, with a reason, a detail and the raw
  reply; final, a rerun does not retry it.

An exception escaping :meth:`Stage.process` is isolated to the one item that raised it and
recorded as an *error*: unlike a failure it is retried on the next run (a timeout, a bug fixed
since).

Stages hold no state shared between items beyond what :meth:`Stage.setup` loads (models), so
an executor may run several copies of a stage in different processes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

Item = dict[str, Any]

FROM = "_from"
FAILURE = "_failure"
DROP = "_drop"
WARNINGS = "_warnings"
PROVENANCE = "_prov"


@dataclass(frozen=True)
class Resources:
    """What one copy of a stage needs; an executor sizes batches and places workers by it."""

    cpus: float = 1.0
    gpus: float = 0.0
    batch_size: int = 8
    #: Copies of the stage a distributed executor runs at once (actors of its pool); the local
    #: executor runs one.
    workers: int = 1


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:24]


def derive(source: Item, new_id: str | None = None, **fields: Any) -> Item:
    """An output item made from ``source``: a deep copy, updated with ``fields``."""
    out = copy.deepcopy(source)
    out.update(fields)
    out["id"] = new_id if new_id is not None else source["id"]
    out[FROM] = source["id"]
    return out


def failed(source: Item, reason: str, detail: str = "", raw: str | None = None) -> Item:
    """Mark ``source`` as failed for ``reason`` (a short snake_case tag counted in summaries)."""
    return {
        "id": source["id"],
        FROM: source["id"],
        FAILURE: {"reason": reason, "detail": detail, "raw": raw},
    }


def dropped(source: Item, reason: str, detail: str = "") -> Item:
    """Filter ``source`` out, keeping why."""
    return {"id": source["id"], FROM: source["id"], DROP: {"reason": reason, "detail": detail}}


def warn(item: Item, stage: str, reason: str, detail: str = "") -> None:
    """Record on an output item that it went on in a degraded form (e.g. an object with no box)."""
    item.setdefault(WARNINGS, []).append({"stage": stage, "reason": reason, "detail": detail})


class Stage:
    """Base class of a pipeline stage.

    Subclasses set :attr:`name` and :attr:`version` (bump it and the stage's stored outputs are
    recomputed, and, through the provenance it stamps on its outputs, everything downstream),
    override :meth:`process`, and load models in :meth:`setup`. :meth:`params` and
    :meth:`prompts` return what else the outputs depend on; both go into the store keys.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    def __init__(self, resources: Resources | None = None) -> None:
        self.resources = resources or Resources()
        self.timings: dict[str, float] = {}
        #: Model calls the stage made (replies answered by a response cache are not counted).
        self.model_calls: int = 0

    def setup(self) -> None:
        """Load models and other per-worker resources. Called once, before the first batch."""

    def process(self, batch: list[Item]) -> list[Item]:
        """Map a batch of items to output items, failures and drops. Default: one by one."""
        out: list[Item] = []
        for item in batch:
            out.extend(self.process_item(item))
        return out

    def process_item(self, item: Item) -> list[Item]:
        raise NotImplementedError(f"stage {self.name!r} implements neither process nor process_item")

    def params(self) -> dict[str, Any]:
        """Parameters that change the outputs (thresholds, model specs)."""
        return {}

    def prompts(self) -> dict[str, str]:
        """Prompt template name -> sha of every template the stage renders."""
        return {}

    def prompt_hash(self) -> str:
        return content_hash(sorted(self.prompts().items())) if self.prompts() else ""

    def params_hash(self) -> str:
        return content_hash(self.params())

    def fingerprint(self) -> str:
        """One string that changes whenever the stage's code version, prompts or params do."""
        return f"{self.name}:{self.version}:{self.prompt_hash()}:{self.params_hash()}"

    @contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        """Account wall time to ``kind`` ("model", "decode", ...) for the run summary."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[kind] = self.timings.get(kind, 0.0) + time.perf_counter() - start

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"
