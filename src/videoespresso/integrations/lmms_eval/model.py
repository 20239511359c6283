"""``--model videoespresso``: any of our VisionLanguageModel specs plus a frame selector, as an
lmms-eval model, so the selector can be plugged into any lmms-eval video task.

``--model_args`` (comma-separated ``key=value``):

* ``spec``: the answering model (default: the profile's reasoner), e.g. ``hf:Qwen/Qwen2-VL-2B-Instruct``;
* ``selector``: ``uniform`` (default), ``caption-llm`` (VideoQA-SC's selector), ``embedding``;
* ``frames``: frames for ``uniform`` (default: the config's ``eval.frames``);
* ``candidates`` / ``max_frames``: candidate frames the ``caption-llm`` and ``embedding``
  selectors caption, and the most they keep (default: the config's ``select`` section);
* ``reasoner``: ``none`` (default: the task's prompt and the frames go to the model as they are)
  or ``two-stage`` (evidence first, then the answer; the task's prompt is the question);
* ``profile`` / ``config``: where the selector's models and defaults come from (as in the CLI);
* ``max_side``: longest side of the frames given to the models.

For each request lmms-eval gives the task's prompt and visuals: a video path gets its frames
chosen by the selector (with the prompt as the question); images (image tasks) are passed on as
they are. A video that cannot be read fails that request with an empty reply and one log line;
the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmms_eval.api.model import lmms

from ...schema import FrameRef, GenerationSettings


@dataclass
class _Frame:
    image: Any
    ref: FrameRef


def _int(value: Any, default: int | None) -> int | None:
    return default if value in (None, "", "None") else int(value)


class VideoEspressoLMM(lmms):
    is_simple = True

    def __init__(
        self,
        spec: str | None = None,
        selector: str = "uniform",
        frames: int | str | None = None,
        candidates: int | str | None = None,
        max_frames: int | str | None = None,
        reasoner: str = "none",
        profile: str | None = None,
        config: str | None = None,
        max_side: int | str | None = None,
        batch_size: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from ...config import load_config
        from ...errors import ConfigError
        from ...models import load_model
        from ...select import load_selector

        if reasoner not in ("none", "two-stage"):
            raise ConfigError(f"reasoner must be none or two-stage, not {reasoner!r}")
        self.config = load_config(profile, config)
        self.spec = spec or self.config.models.reasoner
        self.model = load_model(self.spec, kind="vlm", **self.config.model_options(self.spec))
        overrides: dict[str, Any] = {}
        if selector == "uniform":
            overrides["frames"] = _int(frames, self.config.eval.frames)
        elif selector in ("caption-llm", "embedding"):
            if candidates not in (None, ""):
                overrides["candidates"] = int(candidates)
            if max_frames not in (None, ""):
                overrides["max_frames" if selector == "caption-llm" else "k"] = int(max_frames)
        self.selector_name = selector
        self.selector = load_selector(selector, self.config, **overrides)
        self.reasoner_name = reasoner
        self.max_side = _int(max_side, self.config.sampling.max_side)
        self.batch_size_per_gpu = int(batch_size)
        #: Per request, what was chosen (frame indices, selector, failure), for inspection.
        self.last_frames: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- helpers

    def _settings(self, gen_kwargs: dict[str, Any]) -> GenerationSettings:
        base = self.config.generation
        temperature = float(gen_kwargs.get("temperature", 0) or 0)
        if not gen_kwargs.get("do_sample", temperature > 0):
            temperature = 0.0
        until = gen_kwargs.get("until") or []
        return base.model_copy(update={
            "max_new_tokens": int(gen_kwargs.get("max_new_tokens", base.max_new_tokens)),
            "temperature": temperature,
            "top_p": float(gen_kwargs.get("top_p") or 1.0) if temperature > 0 else 1.0,
            "stop": [until] if isinstance(until, str) else [s for s in until if s],
        })

    def _frames(self, visuals: list[Any], question: str) -> tuple[list[_Frame], dict[str, Any]]:
        from ...video import VideoReader

        frames: list[_Frame] = []
        info: dict[str, Any] = {"selector": self.selector_name, "videos": []}
        for visual in visuals:
            if isinstance(visual, str):
                selection = self.selector.select(visual, question)
                with VideoReader(visual) as reader:
                    decoded = reader.get_frames_at([f.index for f in selection.frames], size=self.max_side)
                frames.extend(_Frame(d.image, d.ref) for d in decoded)
                info["videos"].append({"video": visual, "frames": [f.index for f in selection.frames],
                                       "fallback": selection.fallback})
            else:  # an image task: a PIL image
                frames.append(_Frame(visual, FrameRef(index=len(frames), seconds=0.0)))
        return frames, info

    def _answer(self, frames: list[_Frame], prompt: str, settings: GenerationSettings) -> str:
        if self.reasoner_name == "two-stage":
            from ...reason.reasoners import TwoStageReasoner

            return TwoStageReasoner(self.model, settings).answer(frames, prompt).answer
        from ...models.protocols import user

        return self.model.generate([[user(prompt, [f.image for f in frames])]], settings=settings)[0].text

    # ----------------------------------------------------------------- lmms-eval API

    def generate_until(self, requests) -> list[str]:
        from loguru import logger

        from ...errors import UserError

        replies: list[str] = []
        self.last_frames = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            visuals = doc_to_visual(doc) or []
            try:
                frames, info = self._frames(list(visuals), context)
                reply = self._answer(frames, context, self._settings(dict(gen_kwargs or {})))
            except (UserError, OSError) as exc:
                logger.error(f"videoespresso: {task} doc {doc_id}: {exc}")
                info, reply = {"selector": self.selector_name, "error": str(exc)}, ""
            self.last_frames.append(info)
            replies.append(reply)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), reply)
        return replies

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("videoespresso answers single-turn requests")

    def loglikelihood(self, requests):
        raise NotImplementedError("videoespresso generates; loglikelihood tasks are not supported")
