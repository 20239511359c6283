"""transformers backends: one loader that tells a checkpoint's kind apart from its config.

=========================  ===================================  =====================
config says                backend                              protocol
=========================  ===================================  =====================
image-text-to-text model   :class:`HFVisionLanguageModel`       ``VisionLanguageModel``
causal LM                  :class:`HFChatModel`                 ``ChatModel``
zero-shot object detector  :class:`HFGroundingDino`             ``PhraseGrounder``
CLIP / SigLIP              :class:`HFClipScorer`                ``ImageTextScorer``
=========================  ===================================  =====================

The kind is read from the config (``model_type`` through transformers' own auto-class tables),
never guessed from the name. Device and dtype are automatic unless given: CUDA when available,
bfloat16 where the GPU supports it, else CPU float32.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import CheckpointNotFoundError, SpecError, UserError
from ..schema import Box, Detection, Generation, GenerationSettings
from .protocols import Conversation, JsonSchema, check_text

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL.Image import Image

KINDS = ("vlm", "chat", "grounder", "scorer")
_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
_WORD_RE = re.compile(r"[a-z0-9]+")
# Hub checkpoints ship decoding defaults (Qwen2-VL-Instruct: top_k=1, repetition_penalty=1.05 ...)
# that generate() would silently apply; the recorded GenerationSettings must be the whole story.
_NEUTRAL_DECODING: dict[str, Any] = {
    "top_k": None, "min_p": None, "typical_p": None, "repetition_penalty": None,
    "no_repeat_ngram_size": None, "num_beams": 1, "num_return_sequences": 1, "min_new_tokens": None,
}
_OPTIONS = ("batch_size", "device_map", "attn_implementation", "revision", "gguf_file", "adapters")


# --------------------------------------------------------------------------- loading


def _is_local(name: str) -> bool:
    if Path(name).expanduser().exists():
        return True
    return name.startswith(("/", "./", "../", "~", ".\\")) or (len(name) > 1 and name[1] == ":")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _check_hub_reachable(name: str, spec: str, revision: str | None, timeout_s: float = 3.0) -> None:
    """Fail in seconds, with a hint, when a hub checkpoint is neither cached nor downloadable.

    Without this, a machine with no network spends half a minute in the hub client's retries
    before an error that does not say what to do.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json", revision=revision)
    except ValueError:  # not a valid repository id: the hub call below explains
        return
    if isinstance(cached, str):
        return
    hint = (f"download it where there is network (e.g. `hf download {name} --local-dir DIR`) and use hf:DIR, "
            "or fill the Hugging Face cache")
    if _offline():
        raise CheckpointNotFoundError(f"{spec}: {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {hint}")
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise CheckpointNotFoundError(
            f"{spec}: {name!r} is not in the Hugging Face cache and the hub ({host}:{port}) cannot be reached ({exc}); "
            f"{hint}; set HF_HUB_OFFLINE=1 to fail at once"
        ) from None


def _load_config(name: str, spec: str, trust_remote_code: bool, revision: str | None,
                 gguf_file: str | None = None) -> Any:
    from transformers import AutoConfig

    extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    if _is_local(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            if os.path.lexists(path):
                # A weights file, a GGUF file, a dangling link: say what it is, not that it is missing.
                what = "a file" if path.is_file() else "not a folder"
                raise CheckpointNotFoundError(f"{spec}: {path} is {what}, not a checkpoint folder (a folder with "
                                              "config.json and the weights)")
            raise CheckpointNotFoundError(f"{spec}: local checkpoint folder {path} does not exist")
        if gguf_file:
            if not (path / gguf_file).is_file():
                raise CheckpointNotFoundError(f"{spec}: {path} has no GGUF file {gguf_file!r}")
            try:
                import gguf  # noqa: F401
            except ImportError:
                raise CheckpointNotFoundError(f"{spec}: reading {gguf_file!r} needs the 'gguf' package (pip install gguf)") from None
        elif not (path / "config.json").is_file():
            raise CheckpointNotFoundError(f"{spec}: {path} has no config.json (not a transformers checkpoint)")
        name = str(path)
    else:
        _check_hub_reachable(name, spec, revision)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision, **extra)
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            reason = "the checkpoint needs custom code; pass trust_remote_code=True if you trust it"
        hint = "" if _is_local(name) else " (is the hub reachable, and is the repository name right?)"
        raise CheckpointNotFoundError(f"{spec}: cannot load {name!r}: {reason}{hint}") from None


def checkpoint_kind(config: Any) -> str | None:
    """``vlm``, ``chat``, ``grounder`` or ``scorer`` from a transformers config, or None."""
    from transformers.models.auto import modeling_auto as ma

    model_type = getattr(config, "model_type", "") or ""
    architectures = list(getattr(config, "architectures", None) or [])
    tables = (
        ("grounder", ma.MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES),
        ("scorer", ma.MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES),
        ("vlm", ma.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES),
        ("chat", ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
    )
    for kind, table in tables:
        if model_type in table:
            return kind
    for arch in architectures:
        if arch.endswith("ForCausalLM"):
            return "chat"
        if arch.endswith("ForConditionalGeneration") and hasattr(config, "vision_config"):
            return "vlm"
    return None


def _resolve_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_dtype(dtype: str | None, device: str) -> "torch.dtype":
    import torch

    if dtype and dtype != "auto":
        key = _DTYPES.get(str(dtype).lower().replace("torch.", ""))
        if key is None:
            raise SpecError(f"unknown dtype {dtype!r}; use one of float32, float16, bfloat16, auto")
        return getattr(torch, key)
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_hf(
    name_or_path: str,
    *,
    spec: str,
    kind: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    **options: Any,
) -> Any:
    """Load a transformers checkpoint (local folder or hub repository) as the backend its config calls for.

    ``kind`` (``vlm``/``chat``/``grounder``/``scorer``), when given, must match the checkpoint
    (``chat`` also accepts a vision-language model); an ``embedder`` is never an hf checkpoint
    here (use ``st:``). Options: ``batch_size`` (default 8), ``device_map`` (e.g. ``"auto"``
    for multi-GPU), ``attn_implementation``, ``revision``, ``gguf_file`` (a ``.gguf`` file name
    inside the folder: a causal LM that transformers dequantises on load; needs the ``gguf``
    package).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise SpecError(f"{spec}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(_OPTIONS)}, "
                        "device, dtype, trust_remote_code")
    if kind is not None and kind not in KINDS:
        raise SpecError(f"{spec}: an hf checkpoint is one of {', '.join(KINDS)}, not {kind!r}")
    from transformers.utils import logging as hf_logging

    from .threads import fit_torch_threads

    fit_torch_threads()
    # transformers draws a per-load weight progress bar; our commands report progress themselves
    hf_logging.disable_progress_bar()
    config = _load_config(name_or_path, spec, trust_remote_code, options.get("revision"), options.get("gguf_file"))
    found = checkpoint_kind(config)
    model_type = getattr(config, "model_type", "?")
    if found is None:
        raise SpecError(
            f"{spec}: unsupported checkpoint (model_type {model_type!r}); supported: vision-language "
            "models, causal LMs, GroundingDINO-style detectors, CLIP/SigLIP"
        )
    # A vision-language model is also a chat model (the protocols say so): it serves text-only turns.
    if options.get("gguf_file") and found != "chat":
        raise SpecError(f"{spec}: gguf_file is supported for causal LMs only, and {options['gguf_file']!r} is a {found or model_type}")
    if kind is not None and kind != found and not (kind == "chat" and found == "vlm"):
        raise SpecError(
            f"{spec} is a checkpoint of kind {found!r} ({_KIND_WORDS[found]}, model_type {model_type}), "
            f"not {kind!r} ({_KIND_WORDS[kind]})"
        )
    path = str(Path(name_or_path).expanduser()) if _is_local(name_or_path) else name_or_path
    dev = _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, dev)
    cls = {"vlm": HFVisionLanguageModel, "chat": HFChatModel, "grounder": HFGroundingDino, "scorer": HFClipScorer}[found]
    return cls(path, spec=spec, config=config, device=dev, dtype=torch_dtype,
               trust_remote_code=trust_remote_code, **options)


_KIND_WORDS = {
    "vlm": "vision-language model",
    "chat": "text chat model",
    "grounder": "phrase grounder",
    "scorer": "image-text scorer",
}


class _HFBase:
    """Loading shared by all hf backends: weights onto the device, errors made readable."""

    kind: str = ""
    _auto_model: str = ""

    def __init__(
        self,
        path: str,
        *,
        spec: str,
        config: Any,
        device: str,
        dtype: "torch.dtype",
        trust_remote_code: bool = False,
        batch_size: int = 8,
        device_map: Any = None,
        attn_implementation: str | None = None,
        revision: str | None = None,
        gguf_file: str | None = None,
        adapters: Sequence[str] = (),
    ) -> None:
        import transformers

        if batch_size < 1:
            raise SpecError(f"{spec}: batch_size must be at least 1, got {batch_size}")
        self.spec = spec
        self.path = path
        self.config = config
        self.device = device
        self.dtype = dtype
        self.batch_size = int(batch_size)
        auto = getattr(transformers, self._auto_model)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, "revision": revision}
        if device_map is not None:
            kwargs["device_map"] = device_map
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        self._gguf_file = gguf_file
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            self._load_preprocessor(path, trust_remote_code, revision)
            model = auto.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointNotFoundError(f"{spec}: cannot load the weights or processor of {path!r}: {first}") from None
        for adapter in adapters:
            # LoRA adapters written by `videoespresso train`, merged into the weights at load:
            # the same logits as the merged checkpoint, and no adapter overhead per call.
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        if device_map is None:
            model = model.to(device)
        else:
            self.device = str(next(model.parameters()).device)
        self.model = model.eval()

    def _load_preprocessor(self, path: str, trust_remote_code: bool, revision: str | None) -> None:
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, device={self.device!r}, dtype={str(self.dtype).replace('torch.', '')})"


# --------------------------------------------------------------------------- generation


class _HFGenerator(_HFBase):
    """Batched chat-template generation shared by the chat and vision-language backends."""

    tokenizer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self._eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self._stop_ids = set(self._eos_ids) | {self.tokenizer.pad_token_id}
        self._grammar: Any = None
        self._word_mask: Any = None
        self._max_token_chars: int | None = None
        #: Conversations actually run through the model (generation and option scoring).
        self.calls = 0
        #: The rendered prompt text of each conversation of the last ``generate`` / ``option_logprobs`` call.
        self.last_prompts: list[str] = []

    # -- subclasses: how a conversation becomes a prompt and model inputs
    def _render(self, conversation: Conversation, index: int) -> str:
        raise NotImplementedError

    def _encode(self, prompts: list[str], conversations: Sequence[Conversation]) -> Any:
        raise NotImplementedError

    # -- public API
    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generation]:
        """One :class:`Generation` per conversation, in order, run in sub-batches of ``batch_size``.

        With ``schema`` the decoding is grammar-constrained to compact JSON for that schema; the
        reply is validated and ``parsed`` set, or ``parsed=None`` and ``error`` set when it still
        does not validate (for instance cut by ``max_new_tokens``).

        ``should_stop`` is polled after every generated token; once it returns True generation
        ends early (the server uses it for client disconnects and its per-request time limit).
        A conversation with invalid text or a prompt longer than the model's context raises a
        UserError naming it, before anything is allocated for the batch.
        """
        from .structured import parse_or_error

        settings = settings or GenerationSettings()
        conversations = list(conversations)
        check_text(conversations)
        self._check_chars(conversations)
        prompts = [self._render(c, i) for i, c in enumerate(conversations)]
        self.last_prompts = prompts
        self._check_context(prompts)
        out: list[Generation] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            texts, n_prompt, n_completion = self._generate_batch(
                prompts[chunk], conversations[chunk], settings, schema, should_stop, offset=start
            )
            for text, p, c in zip(texts, n_prompt, n_completion):
                parsed, error = (None, None)
                if schema is not None:
                    parsed, error = parse_or_error(text, schema)
                out.append(Generation(text=text, model=self.spec, settings=settings, prompt_tokens=p,
                                      completion_tokens=c, parsed=parsed, error=error))
        return out

    def _generate_batch(
        self,
        prompts: list[str],
        conversations: Sequence[Conversation],
        settings: GenerationSettings,
        schema: JsonSchema | None,
        should_stop: Callable[[], bool] | None = None,
        offset: int = 0,
    ) -> tuple[list[str], list[int], list[int]]:
        import torch

        inputs = self._encode(prompts, conversations)
        # Image tokens are only known once the processor has expanded them.
        self._check_lengths(inputs["attention_mask"].sum(dim=1).tolist(), offset)
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids or None,
        }
        kwargs.update(_NEUTRAL_DECODING)
        if settings.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None)
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        processors = []
        if settings.repetition_penalty is not None and settings.repetition_penalty != 1.0:
            processors.append(_ReplyWordPenalty(
                self._word_token_mask(), settings.repetition_penalty, inputs["input_ids"].shape[1]
            ))
        criteria = []
        if settings.stop:
            criteria.append(_stop_on_strings(self.tokenizer, settings.stop, inputs["input_ids"].shape[1]))
        if should_stop is not None:
            criteria.append(_stop_when(should_stop))
        if criteria:
            kwargs["stopping_criteria"] = criteria
        if schema is not None:
            processors.append(self._json_grammar().logits_processor(schema))
        if processors:
            kwargs["logits_processor"] = processors
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        self.calls += len(prompts)
        new = output[:, inputs["input_ids"].shape[1]:].tolist()
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        texts, completion = [], []
        for row in new:
            n = next((i for i, t in enumerate(row) if t in self._stop_ids), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            texts.append(_cut_at_stop(text, settings.stop))
            completion.append(n)
        return texts, [int(p) for p in prompt_tokens], completion

    def _with_positions(self, inputs: Any) -> Any:
        """Inputs for a plain forward pass over left-padded rows (generate() does this itself)."""
        return inputs

    @property
    def context_length(self) -> int | None:
        """The longest sequence the model was built for (``max_position_embeddings``), if known."""
        for config in (getattr(self.config, "text_config", None), self.config):
            value = getattr(config, "max_position_embeddings", None) if config is not None else None
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def max_prompt_chars(self) -> int | None:
        """More characters than this can never fit the context, whatever the text: no token of
        the vocabulary stands for more than its longest token's characters (times 3 under a
        Unicode-composing normalizer, which can merge up to 3 characters into one)."""
        limit = self.context_length
        if limit is None:
            return None
        if self._max_token_chars is None:
            longest = max((len(t) for t in self.tokenizer.get_vocab()), default=1)
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            composing = backend is None or backend.normalizer is not None
            self._max_token_chars = longest * (3 if composing else 1)
        return limit * self._max_token_chars

    def _check_chars(self, conversations: Sequence[Conversation]) -> None:
        # Before rendering and tokenising: both cost seconds and GBs on a prompt of megabytes.
        bound = self.max_prompt_chars
        if bound is None:
            return
        for index, conversation in enumerate(conversations):
            chars = sum(len(message.text) for message in conversation)
            if chars > bound:
                raise UserError(
                    f"conversation {index}: the text is {chars} characters, longer than the "
                    f"{self.context_length}-token context of {self.spec} can hold (at most {bound})"
                )

    def _check_context(self, prompts: Sequence[str]) -> None:
        # Counted on the text alone, one prompt at a time, so an overlong one is refused before
        # it is padded into a batch whose attention would need tens of GB.
        if self.context_length is None:
            return
        lengths = [len(self.tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]) for p in prompts]
        self._check_lengths(lengths, 0)

    def _check_lengths(self, lengths: Sequence[int], offset: int) -> None:
        limit = self.context_length
        if limit is None:
            return
        for index, n in enumerate(lengths):
            if int(n) > limit:
                raise UserError(
                    f"conversation {offset + index}: the prompt is {int(n)} tokens, longer than "
                    f"the {limit}-token context of {self.spec}"
                )

    def _word_token_mask(self) -> "torch.Tensor":
        """True for every vocabulary token whose text holds a letter or digit (computed once)."""
        if self._word_mask is None:
            import torch

            vocab = self.model.get_output_embeddings().weight.shape[0]
            texts = self.tokenizer.convert_ids_to_tokens(list(range(min(vocab, len(self.tokenizer)))))
            mask = torch.zeros(vocab, dtype=torch.bool)
            for i, text in enumerate(texts):
                if text and any(ch.isalnum() for ch in text):
                    mask[i] = True
            self._word_mask = mask
        return self._word_mask

    def _json_grammar(self) -> Any:
        from .structured import JsonGrammar

        if self._grammar is None:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            self._grammar = JsonGrammar(self.tokenizer, vocab_size=vocab, stop_token_ids=self._eos_ids)
        return self._grammar

    def option_logprobs(
        self, conversations: Sequence[Conversation], continuations: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Summed log-probability of each continuation right after the assistant generation prompt.

        ``continuations[i]`` lists the candidate replies to ``conversations[i]`` (e.g. the four
        option letters); the result has the same shape. Continuations are tokenized on their
        own and appended to the prompt's tokens, so every option is scored under the same prompt.
        Conversations whose continuations are all single tokens (option letters) are scored from
        one left-padded forward pass over the prompts alone, ``batch_size`` at a time.
        """
        if len(continuations) != len(conversations):
            raise UserError(
                f"option_logprobs: {len(conversations)} conversations but {len(continuations)} continuation lists"
            )
        check_text(conversations)
        self._check_chars(conversations)
        token_ids = [[self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in opts] for opts in continuations]
        for index, ids in enumerate(token_ids):
            if any(not t for t in ids):
                raise UserError(f"option_logprobs: conversation {index} has an empty continuation (no tokens to score)")
        prompts = [self._render(c, i) for i, c in enumerate(conversations)]
        self.last_prompts = prompts
        self._check_context(prompts)
        result: list[list[float]] = [[] for _ in conversations]
        single = [i for i, ids in enumerate(token_ids) if ids and all(len(t) == 1 for t in ids)]
        for start in range(0, len(single), self.batch_size):
            chunk = single[start : start + self.batch_size]
            convs = [conversations[i] for i in chunk]
            next_token = self._next_token_logprobs(self._encode([prompts[i] for i in chunk], convs))
            for row, i in enumerate(chunk):
                result[i] = [float(next_token[row, t[0]]) for t in token_ids[i]]
            self.calls += len(chunk)
        done = set(single)
        for index, (conversation, ids) in enumerate(zip(conversations, token_ids)):
            if index in done or not ids:
                continue
            for start in range(0, len(ids), self.batch_size):
                part = ids[start : start + self.batch_size]
                inputs = self._encode([prompts[index]] * len(part), [conversation] * len(part))
                result[index].extend(self._score_continuations(inputs, part))
            self.calls += 1
        return result

    def _next_token_logprobs(self, inputs: Any) -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            logits = self.model(**self._with_positions(inputs)).logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _score_continuations(self, inputs: Any, ids: list[list[int]]) -> list[float]:
        import torch

        prompt_len = inputs["input_ids"].shape[1]
        width = max(len(t) for t in ids)
        pad = self.tokenizer.pad_token_id
        tail = torch.tensor([t + [pad] * (width - len(t)) for t in ids], device=inputs["input_ids"].device)
        tail_mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in ids], device=tail.device)
        batch = dict(inputs)
        batch["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
        batch["attention_mask"] = torch.cat([inputs["attention_mask"], tail_mask.to(inputs["attention_mask"].dtype)], dim=1)
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in batch:
                batch[key] = torch.cat([batch[key], torch.zeros_like(tail, dtype=batch[key].dtype)], dim=1)
        with torch.inference_mode():
            logits = self.model(**batch).logits
        logprobs = torch.log_softmax(logits[:, prompt_len - 1 : -1].float(), dim=-1)
        picked = logprobs.gather(-1, tail.unsqueeze(-1)).squeeze(-1) * tail_mask
        return [float(x) for x in picked.sum(dim=1).tolist()]


def _apply_template(apply: Any, messages: list[dict[str, Any]]) -> str:
    """Render with the generation prompt; templates that refuse a system turn get it folded
    into the first user turn (as those model families document)."""
    from jinja2 import TemplateError

    try:
        return apply(messages, add_generation_prompt=True, tokenize=False)
    except TemplateError:
        if not messages or messages[0]["role"] != "system" or len(messages) < 2:
            raise
    system_msg, first, rest = messages[0], messages[1], messages[2:]
    if isinstance(first["content"], str):
        merged = {"role": first["role"], "content": f"{system_msg['content']}\n\n{first['content']}"}
    else:
        text = "".join(p.get("text", "") for p in system_msg["content"])
        merged = {"role": first["role"], "content": [*first["content"][:-1],
                  {"type": "text", "text": f"{text}\n\n{first['content'][-1]['text']}"}]}
    return apply([merged, *rest], add_generation_prompt=True, tokenize=False)


def _stop_on_strings(tokenizer: Any, stops: Sequence[str], prompt_len: int) -> Any:
    """Stop a row once its *generated* text contains a stop string.

    transformers' own ``stop_strings`` also match across the end of the prompt (a prompt ending in
    a newline plus one generated newline "contains" ``"\\n\\n"``), which is not the API meaning.
    """
    import torch
    from transformers import StoppingCriteria

    stops = [s for s in stops if s]
    # every token decodes to at least part of one character: this many tokens cover any stop
    window = max(len(s.encode("utf-8")) for s in stops) + 1

    class _StopStrings(StoppingCriteria):
        def __call__(self, input_ids: "torch.LongTensor", scores: Any, **kwargs: Any) -> "torch.BoolTensor":
            start = max(prompt_len, input_ids.shape[1] - window)
            tails = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stops) for t in tails], device=input_ids.device)

    return _StopStrings()


class _ReplyWordPenalty:
    """``repetition_penalty`` as this backend applies it: a token with a letter or digit that the
    reply already holds has its logit divided by the penalty (multiplied when negative).

    Unlike transformers' own processor it leaves the prompt out (a reply may use the captions'
    words) and punctuation alone (JSON needs its quotes, commas and brackets again and again;
    penalising them makes a grammar-constrained reply run on inside a string).
    """

    def __init__(self, word_mask: "torch.Tensor", penalty: float, prompt_len: int) -> None:
        self.word_mask = word_mask
        self.penalty = float(penalty)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        import torch

        reply = input_ids[:, self.prompt_len:]
        if reply.shape[1] == 0:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool)
        seen.scatter_(1, reply.clamp(max=scores.shape[1] - 1), True)
        # the mask has one entry per row of the output embeddings, as many as the scores
        seen &= self.word_mask.to(scores.device)[: scores.shape[1]].unsqueeze(0)
        penalised = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return torch.where(seen, penalised, scores)


def _stop_when(should_stop: Callable[[], bool]) -> Any:
    """A stopping criterion that ends every row once ``should_stop()`` says so."""
    import torch
    from transformers import StoppingCriteria

    class _StopWhen(StoppingCriteria):
        def __call__(self, input_ids: "torch.LongTensor", scores: Any, **kwargs: Any) -> "torch.BoolTensor":
            return torch.full((input_ids.shape[0],), bool(should_stop()), device=input_ids.device)

    return _StopWhen()


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Text up to (not including) the earliest stop string, as OpenAI-style APIs return it."""
    cut = len(text)
    for stop in stops:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]


class HFChatModel(_HFGenerator):
    """A causal LM answering chat conversations through its tokenizer's chat template."""

    kind = "chat"
    _auto_model = "AutoModelForCausalLM"

    def _load_preprocessor(self, path: str, trust_remote_code: bool, revision: str | None) -> None:
        from transformers import AutoTokenizer

        extra = {"gguf_file": self._gguf_file} if self._gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision, **extra)

    def _render(self, conversation: Conversation, index: int) -> str:
        messages = []
        for message in conversation:
            if message.visuals:
                raise UserError(
                    f"{self.spec} is a text-only chat model; conversation {index} has "
                    f"{len(message.visuals)} image(s) or video frame(s) in a {message.role} turn"
                )
            messages.append({"role": message.role, "content": message.text})
        if not getattr(self.tokenizer, "chat_template", None):
            # A base LM without a template: a plain transcript that ends on the assistant cue.
            return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return _apply_template(self.tokenizer.apply_chat_template, messages)

    def _with_positions(self, inputs: Any) -> Any:
        # Position ids that start at each row's first real token, so a left-padded row scores as
        # it would alone (models with absolute positions depend on it; RoPE models are unaffected).
        batch = dict(inputs)
        batch["position_ids"] = (inputs["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
        return batch

    def _encode(self, prompts: list[str], conversations: Sequence[Conversation]) -> Any:
        # The chat template already wrote the special tokens (BOS, turn markers).
        inputs = self.tokenizer(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
        return inputs.to(self.device)


class HFVisionLanguageModel(_HFGenerator):
    """An image-text-to-text model: the processor's chat template places images before text."""

    kind = "vlm"
    _auto_model = "AutoModelForImageTextToText"

    def _load_preprocessor(self, path: str, trust_remote_code: bool, revision: str | None) -> None:
        super()._load_preprocessor(path, trust_remote_code, revision)
        self.tokenizer = self.processor.tokenizer

    def _render(self, conversation: Conversation, index: int) -> str:
        messages = []
        for message in conversation:
            content: list[dict[str, Any]] = [{"type": "image"} for _ in message.images]
            if message.video is not None:
                content.append({"type": "video"})
            content.append({"type": "text", "text": message.text})
            messages.append({"role": message.role, "content": content})
        return _apply_template(self.processor.apply_chat_template, messages)

    def _encode(self, prompts: list[str], conversations: Sequence[Conversation]) -> Any:
        # One list of images per prompt: processors that split a batch by sample need the nesting,
        # the others flatten it.
        images = [[_rgb(img) for m in conv for img in m.images] for conv in conversations]
        clips = [m.video for conv in conversations for m in conv if m.video is not None]
        if not any(images) and not clips:
            return self.processor(text=prompts, padding=True, return_tensors="pt").to(self.device)
        kwargs: dict[str, Any] = {}
        if any(images):
            kwargs["images"] = images
        if clips:
            kwargs.update(self._video_inputs(clips))
        try:
            inputs = self.processor(text=prompts, padding=True, return_tensors="pt", **kwargs)
        except ValueError as exc:
            # Image processors reject degenerate images (1x5000, a side below the patch size)
            # with a ValueError: bad input of this batch, not a bug.
            pictures = [i for row in images for i in row] + [f for clip in clips for f in clip.frames]
            sizes = ", ".join(f"{i.size[0]}x{i.size[1]}" for i in pictures)
            raise UserError(f"{self.spec}: the processor rejected the images ({sizes}): {exc}") from None
        return inputs.to(self.device, dtype=self.dtype)

    def _video_inputs(self, clips: Sequence[Any]) -> dict[str, Any]:
        """The processor's video arguments: the frames as they are (we sampled them already),
        with each clip's source fps, length and frame indices as metadata, so processors that
        place frames in time (timestamps, temporal position ids) see where each frame was."""
        if getattr(self.processor, "video_processor", None) is None:
            raise UserError(f"{self.spec}: this model's processor has no video path; use the image input (--input images)")
        from transformers.video_utils import VideoMetadata

        videos = [[_rgb(f) for f in clip.frames] for clip in clips]
        metadata = [
            VideoMetadata(total_num_frames=clip.total_frames, fps=clip.fps, duration=clip.duration_s,
                          frames_indices=list(clip.indices))
            for clip in clips
        ]
        return {"videos": videos, "video_metadata": metadata, "do_sample_frames": False}


def _rgb(image: Any) -> "Image":
    """A PIL RGB image from a PIL image of any mode or an ``(H, W, 3)`` uint8 array (a decoded frame)."""
    from PIL import Image as PILImage

    if not isinstance(image, PILImage.Image):
        import numpy as np

        image = PILImage.fromarray(np.asarray(image))
    return image if image.mode == "RGB" else image.convert("RGB")


# --------------------------------------------------------------------------- grounding and scoring


class HFGroundingDino(_HFBase):
    """Open-vocabulary phrase grounding (GroundingDINO and other zero-shot detectors)."""

    kind = "grounder"
    _auto_model = "AutoModelForZeroShotObjectDetection"

    def ground(
        self,
        images: Sequence["Image"],
        phrases: Sequence[Sequence[str]],
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
    ) -> list[list[Detection]]:
        """For each image, the boxes of its phrases as normalised corner boxes, best score first.

        GroundingDINO reads one lower-cased prompt per image, phrases separated by ``" . "``;
        each detected span is mapped back to the caller's phrase it came from.
        """
        import torch

        if len(images) != len(phrases):
            raise UserError(f"{self.spec}: {len(images)} images but {len(phrases)} phrase lists")
        results: list[list[Detection]] = []
        for start in range(0, len(images), self.batch_size):
            imgs = [_rgb(i) for i in images[start : start + self.batch_size]]
            lists = [list(p) for p in phrases[start : start + self.batch_size]]
            todo = [i for i, p in enumerate(lists) if p]
            found: dict[int, list[Detection]] = {i: [] for i in range(len(imgs))}
            if todo:
                texts = [" . ".join(p.strip().lower() for p in lists[i]) + " ." for i in todo]
                inputs = self.processor(images=[imgs[i] for i in todo], text=texts, padding=True, return_tensors="pt")
                inputs = inputs.to(self.device, dtype=self.dtype)
                with torch.inference_mode():
                    try:
                        outputs = self.model(**inputs)
                    except ValueError as exc:
                        if "more than 1 value per channel" not in str(exc):
                            raise
                        # A small square image leaves a 1x1 map at the coarsest level, which group
                        # norm refuses; padding (masked out, as batch padding is) widens it.
                        outputs = self.model(**_pad_width(inputs))
                sizes = [(imgs[i].height, imgs[i].width) for i in todo]
                post = self.processor.post_process_grounded_object_detection(
                    outputs, inputs["input_ids"], threshold=box_threshold, text_threshold=text_threshold,
                    target_sizes=sizes,
                )
                for i, res, (h, w) in zip(todo, post, sizes):
                    labels = res["text_labels"] if "text_labels" in res else res["labels"]
                    found[i] = _detections(res["scores"].tolist(), res["boxes"].tolist(), labels, lists[i], w, h)
            results.extend(found[i] for i in range(len(imgs)))
        return results


def _pad_width(inputs: Any) -> Any:
    """Detector inputs with the pixels padded on the right to twice their width, masked out."""
    import torch

    batch = dict(inputs)
    pixels = batch["pixel_values"]
    batch["pixel_values"] = torch.cat([pixels, torch.zeros_like(pixels)], dim=-1)
    mask = batch.get("pixel_mask")
    if mask is None:
        mask = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long, device=pixels.device)
    batch["pixel_mask"] = torch.cat([mask, torch.zeros_like(mask)], dim=-1)
    return batch


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower().replace("[sep]", " ").replace("[cls]", " ").replace("[pad]", " "))


def _match_phrase(label: str, phrases: list[str]) -> str | None:
    """The caller's phrase a detected text span belongs to.

    A span can cover part of a phrase, several phrases, or trailing separators (``"a man. [SEP]"``
    at low text thresholds): the phrase sharing the most words wins, the earlier one on a tie.
    """
    words = set(_words(label))
    best, overlap = None, 0
    for phrase in phrases:
        n = len(words & set(_words(phrase)))
        if n > overlap:
            best, overlap = phrase, n
    return best


def _detections(
    scores: list[float], boxes: list[list[float]], labels: list[str], phrases: list[str], w: int, h: int
) -> list[Detection]:
    out: list[Detection] = []
    for score, (x0, y0, x1, y1), label in zip(scores, boxes, labels):
        phrase = _match_phrase(str(label), phrases)
        if phrase is None:
            continue
        nx0, nx1 = sorted((_clip01(x0 / w), _clip01(x1 / w)))
        ny0, ny1 = sorted((_clip01(y0 / h), _clip01(y1 / h)))
        box = Box(x0=nx0, y0=ny0, x1=nx1, y1=ny1, score=float(score))
        out.append(Detection(phrase=phrase, box=box, score=float(score)))
    out.sort(key=lambda d: -d.score)
    return out


class HFClipScorer(_HFBase):
    """Image-text cosine similarity with CLIP, SigLIP and their relatives."""

    kind = "scorer"
    _auto_model = "AutoModel"

    def score(self, images: Sequence["Image"], texts: Sequence[str]) -> "np.ndarray":
        """An ``(n_images, n_texts)`` float32 matrix of cosine similarities."""
        import numpy as np
        import torch

        if not images or not texts:
            return np.zeros((len(images), len(texts)), dtype=np.float32)
        image_emb = torch.cat([self._embed_images(images[s : s + self.batch_size])
                               for s in range(0, len(images), self.batch_size)])
        text_emb = torch.cat([self._embed_texts(list(texts[s : s + self.batch_size]))
                              for s in range(0, len(texts), self.batch_size)])
        return (image_emb @ text_emb.T).cpu().numpy().astype(np.float32)

    def _embed_images(self, images: Sequence["Image"]) -> "torch.Tensor":
        import torch

        inputs = self.processor(images=[_rgb(i) for i in images], return_tensors="pt").to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            emb = _pooled(self.model.get_image_features(**inputs))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def _embed_texts(self, texts: list[str]) -> "torch.Tensor":
        import torch

        # SigLIP was trained on max-length padded text; CLIP pools at the EOS token and pads freely.
        padding = "max_length" if "siglip" in getattr(self.config, "model_type", "") else True
        inputs = self.processor(text=texts, padding=padding, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            emb = _pooled(self.model.get_text_features(**inputs))
        return torch.nn.functional.normalize(emb.float(), dim=-1)


def _pooled(features: Any) -> "torch.Tensor":
    """transformers 5 returns an output object whose ``pooler_output`` is the projected embedding."""
    import torch

    if isinstance(features, torch.Tensor):
        return features
    return features.pooler_output

