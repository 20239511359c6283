"""Stage 2: caption every sampled frame with a vision-language model, batched across videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine import Item, Resources, derive, failed
from ..models.protocols import user
from ..schema import GenerationSettings
from ..engine.storage import as_root
from ._common import ModelPool, ModelStage, load_images
from .schemas import clean_text

PROMPT = "curate/caption"


class CaptionFrames(ModelStage):
    name = "caption"
    version = "1"

    def __init__(
        self,
        root: Path,
        pool: ModelPool,
        captioner: str,
        settings: GenerationSettings | None = None,
        frames_per_call: int = 8,
        resources: Resources | None = None,
        prompt_files: dict[str, str] | None = None,
    ) -> None:
        super().__init__(pool, settings, resources or Resources(gpus=1, batch_size=4), prompt_files)
        self.root = as_root(root)
        self.captioner = captioner
        self.frames_per_call = frames_per_call

    def params(self) -> dict[str, Any]:
        return {"captioner": self.captioner, "settings": self.settings.model_dump()}

    def prompts(self) -> dict[str, str]:
        return {PROMPT: self.prompt(PROMPT).sha}

    def setup(self) -> None:
        self.model = self.pool.get(self.captioner, "vlm")

    def process(self, batch: list[Item]) -> list[Item]:
        prompt = self.prompt(PROMPT).render()
        out: list[Item] = []
        jobs: list[tuple[int, int]] = []
        images: list[Any] = []
        for n, item in enumerate(batch):
            try:
                with self.timed("decode"):
                    loaded = load_images(self.root, item["frames"])
            except OSError as exc:
                out.append(failed(item, "missing_frames", str(exc)))
                continue
            jobs.extend((n, k) for k in range(len(loaded)))
            images.extend(loaded)
        texts: list[str] = []
        for start in range(0, len(images), self.frames_per_call):
            chunk = images[start : start + self.frames_per_call]
            with self.timed("model"):
                gens = self.model.generate([[user(prompt, [img])] for img in chunk], self.settings)
            self.model_calls += sum(not g.cached for g in gens)
            texts.extend(clean_text(g.text) for g in gens)
        captions: dict[int, list[str]] = {}
        for (n, _k), text in zip(jobs, texts):
            captions.setdefault(n, []).append(text)
        for n, item in enumerate(batch):
            if n in captions:
                out.append(derive(item, captions=captions[n], captioner=self.captioner))
        return out
