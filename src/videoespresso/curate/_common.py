"""What several stages share: lazily loaded models, frame images on disk, caption listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine import Resources, Stage
from ..errors import ConfigError
from ..prompts import Prompt, load_prompt, parse_prompt
from ..schema import GenerationSettings


class ModelPool:
    """Loads each (spec, kind) once per process, on first use, through ``load_model``.

    Holds only specs and options until asked, so a pool pickles cheaply and each worker of a
    distributed executor builds its own models. ``preloaded`` lets a caller that already holds a
    model (a test session, a notebook) hand it in under its spec.
    """

    def __init__(
        self,
        options: dict[str, dict[str, Any]] | None = None,
        cache: str | Path | None = None,
        preloaded: dict[str, Any] | None = None,
    ) -> None:
        self.options = dict(options or {})
        self.cache = str(cache) if cache is not None else None
        self._models: dict[tuple[str, str | None], Any] = {}
        self._preloaded = dict(preloaded or {})
        self._response_cache: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_models": {}, "_preloaded": {}, "_response_cache": None}

    def get(self, spec: str, kind: str | None = None) -> Any:
        """The model for ``spec``; generation models answer repeated calls from the cache file."""
        key = (spec, kind)
        if key not in self._models:
            if spec in self._preloaded:
                model = self._preloaded[spec]
            else:
                from ..models.registry import load_model

                model = load_model(spec, kind=kind, **self.options.get(spec, {}))
            if self.cache is not None and hasattr(model, "generate"):
                from ..models.cache import CachedModel, ResponseCache

                if self._response_cache is None:
                    self._response_cache = ResponseCache(self.cache)
                model = CachedModel(model, self._response_cache)
            self._models[key] = model
        return self._models[key]

    def close(self) -> None:
        if self._response_cache is not None:
            self._response_cache.close()


class ModelStage(Stage):
    """A stage that calls models from a :class:`ModelPool`, with explicit generation settings.

    ``prompt_files`` maps a template name (``"curate/qa"``) to a user's file that replaces the
    packaged template; its sha enters the store keys like the packaged one's would.
    """

    def __init__(
        self,
        pool: ModelPool,
        settings: GenerationSettings | None = None,
        resources: Resources | None = None,
        prompt_files: dict[str, str] | None = None,
    ) -> None:
        super().__init__(resources)
        self.pool = pool
        self.settings = settings or GenerationSettings()
        self.prompt_files = dict(prompt_files or {})

    def prompt(self, name: str) -> Prompt:
        if name in self.prompt_files:
            path = Path(self.prompt_files[name])
            if not path.is_file():
                raise ConfigError(f"prompt file for {name!r} does not exist: {path}")
            return parse_prompt(name, path.read_text("utf-8"))
        return load_prompt(name)


def frame_path(root: Path, frame: dict[str, Any]) -> Path:
    path = Path(frame["path"])
    return path if path.is_absolute() else root / path


def load_images(root: Path | str, frames: Sequence[dict[str, Any]]) -> list[Any]:
    """The frames' images; ``root`` is a folder or an fsspec URL (a build whose --out is one)."""
    from PIL import Image

    images = []
    for frame in frames:
        if isinstance(root, str) and not Path(frame["path"]).is_absolute():
            from ..engine.storage import open_url

            with open_url(f"{root}/{frame['path']}") as handle, Image.open(handle) as img:
                images.append(img.convert("RGB"))
            continue
        with Image.open(frame_path(Path(root), frame)) as img:
            images.append(img.convert("RGB"))
    return images


def numbered_captions(frames: Sequence[dict[str, Any]], captions: Sequence[str]) -> str:
    return "\n".join(
        f"[{n}] ({frame['seconds']:.1f} s) {caption}"
        for n, (frame, caption) in enumerate(zip(frames, captions), start=1)
    )


def pick_numbered(numbers: Sequence[int], count: int) -> tuple[list[int], list[int]]:
    """1-based frame numbers -> sorted unique 0-based positions, plus the numbers out of range."""
    valid = sorted({n - 1 for n in numbers if 1 <= n <= count})
    invalid = [n for n in numbers if not 1 <= n <= count]
    return valid, invalid


class JsonStage(ModelStage):
    """A stage that asks a chat model for JSON replies (see :func:`._json.ask_json`)."""

    prompt_name = ""

    def __init__(
        self,
        pool: ModelPool,
        llm: str,
        settings: GenerationSettings | None = None,
        *,
        constrained: bool = True,
        max_chars: int | None = None,
        resources: Resources | None = None,
        prompt_files: dict[str, str] | None = None,
    ) -> None:
        super().__init__(pool, settings, resources or Resources(gpus=1, batch_size=8), prompt_files)
        self.llm = llm
        self.constrained = constrained
        self.max_chars = max_chars

    def params(self) -> dict[str, Any]:
        return {
            "llm": self.llm, "settings": self.settings.model_dump(),
            "constrained": self.constrained, "max_chars": self.max_chars,
        }

    def prompts(self) -> dict[str, str]:
        from ._json import RETRY_PROMPT

        return {name: self.prompt(name).sha for name in (self.prompt_name, RETRY_PROMPT)}

    def setup(self) -> None:
        self.model = self.pool.get(self.llm, "chat")

    def ask(self, conversations: list[Any], schema: Any, model: Any = None) -> list[Any]:
        from ._json import RETRY_PROMPT, ask_json

        with self.timed("model"):
            replies, sent = ask_json(
                model or self.model, conversations, schema, self.settings,
                constrained=self.constrained, retry_prompt=self.prompt(RETRY_PROMPT),
            )
        self.model_calls += sent
        return replies

    def ask_by_frame_count(
        self, batch: list[Any], conversations: list[Any], schema_for: Callable[[int], Any]
    ) -> list[Any]:
        """``ask`` for items whose schemas depend on their group's frame count: one call per
        count with ``schema_for(count)``, the replies back in batch order."""
        groups: dict[int, list[int]] = {}
        for n, item in enumerate(batch):
            groups.setdefault(len(item["frames"]), []).append(n)
        replies: list[Any] = [None] * len(batch)
        for n_frames, members in groups.items():
            asked = self.ask([conversations[n] for n in members], schema_for(n_frames))
            for n, reply in zip(members, asked):
                replies[n] = reply
        return replies
