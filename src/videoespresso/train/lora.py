"""LoRA supervised fine-tuning of the selector LLM and the two-stage reasoner.

Built on the Hugging Face ``Trainer`` with a peft LoRA model (not trl's ``SFTTrainer``): the
Trainer gives gradient accumulation, the cosine schedule with warm-up, checkpoints with exact
resume (optimizer, scheduler, RNG, data position) and ``accelerate launch`` / ``torchrun`` /
DeepSpeed / FSDP support; what SFTTrainer adds (its own chat formatting and packing) is what we
must *not* use, because the prompt has to be rendered by the same code that renders it at
inference. So each example is encoded by the inference backend itself
(:class:`~videoespresso.models.hf.HFChatModel` / ``HFVisionLanguageModel``): the prompt turn(s)
through the backend's chat template and processor (images included, so image-token expansion is
what inference sees), then the target's tokens and the end-of-turn token. Labels are ``-100``
over the whole prompt (text and image tokens) and the target's ids after it.

Outputs in ``--out``: ``adapter/`` (peft adapter + ``videoespresso_adapter.json`` naming the base
spec, loadable as ``hf:OUT/adapter``), ``merged/`` with ``merge`` (a full checkpoint,
``hf:OUT/merged``, naming its base in ``videoespresso_merged.json``), ``loss.jsonl`` and
``loss.png`` (loss and the learning rate of each optimiser step),
``train_summary.json``, and ``checkpoints/`` (resume points).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, UserError
from ..schema import SFTExample

#: The projections of each LoRA target choice (what ``lora_targets`` names).
PROJECTIONS = {"all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
               "attention": ("q_proj", "k_proj", "v_proj", "o_proj")}
ADAPTER_INFO = "videoespresso_adapter.json"
#: In a merged checkpoint: the base it was trained from (a merged folder loads as a plain
#: checkpoint, so only this says where its weights came from).
MERGED_INFO = "videoespresso_merged.json"


def lora_targets(modules: str = "all", layers: Sequence[int] | None = None) -> str:
    """A ``target_modules`` pattern: the language model's ``all`` linear projections or its
    ``attention`` ones only, in every decoder layer or in ``layers`` only (LoRA on the top layers
    alone also makes backward stop there: the layers below hold nothing to train)."""
    if modules not in PROJECTIONS:
        raise ConfigError(f"LoRA targets must be one of {', '.join(PROJECTIONS)}, not {modules!r}")
    names = "|".join(PROJECTIONS[modules])
    where = rf".*\.layers\.({'|'.join(str(i) for i in layers)})\..*" if layers else ".*"
    vision = r"(?!.*(visual|vision_tower|vision_model|image_newline|multi_modal_projector|connector))"
    return rf"^{vision}{where}\.({names})$"


#: LoRA on the language model's attention and MLP projections only (never the vision tower).
LANGUAGE_MODEL_PROJECTIONS = lora_targets()
#: The paper's learning rates (section 6); the selector uses stage 1's.
DEFAULT_LR = {"selector": 2e-5, "stage1": 2e-5, "stage2": 1e-5}


@dataclass
class TrainSettings:
    """The recipe; defaults are the paper's (r 16, alpha 32, cosine, warm-up 0.03, weight decay
    0.02, effective batch 16, 1 epoch, 224 px, 6,144 tokens)."""

    lr: float | None = None
    epochs: float = 1.0
    max_steps: int = -1
    #: Examples per optimiser step (gradient accumulation over examples of batch 1).
    batch_size: int = 16
    warmup_ratio: float = 0.03
    weight_decay: float = 0.02
    scheduler: str = "cosine"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: str = LANGUAGE_MODEL_PROJECTIONS
    max_tokens: int = 6144
    image_size: int = 224
    seed: int = 0
    save_steps: int = 50
    logging_steps: int = 1


@dataclass
class TrainResult:
    out: Path
    steps: int
    examples: int
    skipped: list[str] = field(default_factory=list)
    truncated: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    seconds: float = 0.0
    resumed_from: str | None = None
    merged: Path | None = None
    #: Mean per-token loss on the held-out examples before and after training.
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None


# --------------------------------------------------------------------------- encoding


def _load_images(example: SFTExample, size: int) -> list[Any]:
    from PIL import Image

    images = []
    for path in example.images:
        try:
            with Image.open(path) as img:
                picture = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise UserError(f"example {example.id}: image {path!r} cannot be read ({exc})") from None
        if size and max(picture.size) > size:
            scale = size / max(picture.size)
            picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
        images.append(picture)
    return images


def prompt_conversation(example: SFTExample, images: Sequence[Any]) -> list[Any]:
    """The example's turns before the target, as the inference backends take them."""
    from ..models.protocols import ChatMessage

    turns = []
    placed = False
    for message in example.messages[:-1]:
        pictures: list[Any] = []
        if message.role == "user" and not placed:
            pictures, placed = list(images), True
        turns.append(ChatMessage(role=message.role, text=message.content, images=pictures))
    return turns


def encode_example(backend: Any, example: SFTExample, *, max_tokens: int, image_size: int) -> tuple[dict[str, Any], bool]:
    """Model inputs with ``labels`` for one example, and whether the target was truncated.

    Raises a UserError naming the example when it cannot be trained on (images missing, a text
    model given images, the prompt alone past ``max_tokens``)."""
    import torch

    images = _load_images(example, image_size) if example.images else []
    conversation = prompt_conversation(example, images)
    prompt = backend._render(conversation, 0)
    inputs = backend._encode([prompt], [conversation])
    inputs = {k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in dict(inputs).items()}
    prompt_ids = inputs["input_ids"][0]
    target_ids = backend.tokenizer(example.messages[-1].content, add_special_tokens=False)["input_ids"]
    eos = backend._eos_ids[0] if backend._eos_ids else backend.tokenizer.eos_token_id
    target = list(target_ids) + ([eos] if eos is not None else [])
    room = max_tokens - len(prompt_ids)
    if room < 2:
        raise UserError(f"example {example.id}: the prompt alone is {len(prompt_ids)} tokens, over --max-tokens {max_tokens}")
    truncated = len(target) > room
    target = target[:room]
    ids = torch.cat([prompt_ids, torch.tensor(target, dtype=prompt_ids.dtype)])
    labels = torch.cat([torch.full_like(prompt_ids, -100), torch.tensor(target, dtype=prompt_ids.dtype)])
    for key, value in list(inputs.items()):
        # Per-token side inputs (Qwen2-VL's mm_token_type_ids, token_type_ids): text for the target.
        if key not in ("input_ids", "attention_mask") and hasattr(value, "dim") and value.dim() == 2 \
                and value.shape == (1, len(prompt_ids)):
            inputs[key] = torch.cat([value, torch.zeros((1, len(target)), dtype=value.dtype)], dim=1)
    inputs["input_ids"] = ids.unsqueeze(0)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["labels"] = labels.unsqueeze(0)
    inputs.pop("position_ids", None)
    return inputs, truncated


class _Examples:
    """A map-style dataset of encoded examples (encoded once, up front, so bad examples are
    found and named before the first step)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _collate(features: list[dict[str, Any]]) -> dict[str, Any]:
    if len(features) != 1:
        raise ValueError("the trainer runs one example per forward pass (batch via gradient accumulation)")
    return dict(features[0])


# --------------------------------------------------------------------------- data


def read_examples(path: str | Path) -> list[SFTExample]:
    """SFT examples from a JSONL file of :class:`SFTExample` records (what the builders write)."""
    from pydantic import ValidationError

    from ..errors import FormatError
    from ..formats.jsonl import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such examples file")
    out: list[SFTExample] = []
    for line, obj, error in read_jsonl(path):
        if error is not None:
            raise FormatError(f"{path}: {error}")
        try:
            out.append(SFTExample.model_validate(obj))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise FormatError(f"{path}:{line}: not an SFT example ({'.'.join(map(str, first['loc']))}: {first['msg']})") from None
    if not out:
        raise FormatError(f"{path}: holds no examples")
    return out


def load_training_examples(data: str | Path, target: str, *, frames_root: str | Path | None = None,
                           video_root: str | Path | None = None,
                           **options: Any) -> tuple[list[SFTExample], list[str]]:
    """Examples of ``target`` from a build folder, an official train file, or an examples JSONL.

    ``options`` go to the builders: ``context_frames``, ``context_dir`` and ``evidence_tags`` to
    both (:func:`~videoespresso.train.examples.examples_from_build`), the rest (the selector VLM,
    embedder, candidate count for selector examples) to
    :func:`~videoespresso.train.examples.examples_from_train_items` only. An examples file is
    read as it is: its examples were built with their options already."""
    from ..errors import FormatError
    from .examples import examples_from_build, examples_from_train_items

    data = Path(data)
    if data.is_dir():
        stage = {k: v for k, v in options.items() if k in ("context_frames", "context_dir", "evidence_tags")}
        examples, problems = examples_from_build(data, [target], video_root=video_root, **stage)  # type: ignore[list-item]
    elif data.suffix == ".jsonl":
        examples, problems = [e for e in read_examples(data) if e.target == target], []
    elif data.suffix == ".json":
        from ..formats.train import read_train

        examples, problems = examples_from_train_items(read_train(data), [target],  # type: ignore[list-item]
                                                       frames_root=frames_root or data.parent, video_root=video_root,
                                                       **options)
    else:
        raise FormatError(f"{data}: give a build folder, an official train .json or an examples .jsonl")
    examples = [e for e in examples if e.target == target]
    if not examples:
        raise FormatError(f"{data}: no {target} examples" + (f" ({problems[0]})" if problems else ""))
    return examples, problems


def write_examples(examples: Sequence[SFTExample], path: str | Path) -> Path:
    """Write examples as JSONL of :class:`SFTExample` records (what :func:`read_examples` and
    ``train --data`` read), by temp file + rename: building selector examples from a train file
    captions every candidate frame, so they are worth keeping for later runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(example.model_dump_json() + "\n")
    temp.replace(path)
    return path


# --------------------------------------------------------------------------- training


def _peft_model(model: Any, settings: TrainSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=settings.target_modules, bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"LoRA found no language-model projections to adapt ({exc})") from None


def _log_callback(path: Path, on_step: Callable[[int, int], None] | None):
    from transformers import TrainerCallback

    from ..failpoints import failpoint

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs and state.is_world_process_zero:
                row = {"step": state.global_step, "loss": float(logs["loss"]),
                       "learning_rate": float(logs.get("learning_rate", 0.0)), "epoch": float(logs.get("epoch", 0.0))}
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if on_step is not None:
                on_step(state.global_step, state.max_steps)

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            failpoint("train:save")

    return _Log()


SCHEDULERS = ("cosine", "linear", "constant")


def lr_factor(step: int, total: int, warmup_ratio: float, scheduler: str) -> float:
    """The learning-rate multiplier of optimiser step ``step`` (0-based) of ``total``.

    The warm-up lasts ``floor(warmup_ratio * total)`` steps (none in a run too short for a whole
    step of it) and rises to 1 as ``(step + 1) / (warmup + 1)``, so no step, the first included,
    trains at learning rate 0; transformers' schedules start at 0 (and, rounding the warm-up up,
    give a 2-step run a first step that changes nothing). After it, ``cosine`` and ``linear``
    decay towards 0 without reaching it on the last step; ``constant`` stays at 1.
    """
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    if scheduler == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if scheduler == "linear":
        return 1.0 - progress
    return 1.0


def _trainer_class(settings: TrainSettings) -> type:
    from torch.optim.lr_scheduler import LambdaLR
    from transformers import Trainer

    if settings.scheduler not in SCHEDULERS:
        raise ConfigError(f"train scheduler {settings.scheduler!r}: expected one of {', '.join(SCHEDULERS)}")

    class _Trainer(Trainer):
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                self.lr_scheduler = LambdaLR(
                    optimizer or self.optimizer,
                    lambda step: lr_factor(step, num_training_steps, settings.warmup_ratio, settings.scheduler),
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return _Trainer


def _last_checkpoint(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder))


def _plot(log: Path, png: Path) -> None:
    rows = [json.loads(line) for line in log.read_text("utf-8").splitlines() if line.strip()]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="#1f6feb", label="loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    twin = ax.twinx()
    twin.plot([r["step"] for r in rows], [r["learning_rate"] for r in rows], color="#999999", linestyle="--", label="lr")
    twin.set_ylabel("learning rate")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def train_lora(
    examples: Sequence[SFTExample],
    base_spec: str,
    out: str | Path,
    *,
    target: str,
    settings: TrainSettings | None = None,
    merge: bool = False,
    resume: bool = True,
    eval_examples: Sequence[SFTExample] = (),
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """LoRA-train ``base_spec`` (any hf:/tiny:/smollm2 spec of a causal LM or VLM) on ``examples``."""
    import time

    import torch
    from transformers import TrainingArguments

    from ..formats.jsonl import write_json_atomic
    from ..models.registry import load_model, parse_spec

    settings = settings or TrainSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if parse_spec(base_spec).scheme not in ("hf", "tiny", "smollm2"):
        raise ConfigError(f"--base {base_spec}: training needs a local transformers checkpoint (hf:, tiny: or smollm2)")
    backend = load_model(base_spec, kind="chat")
    if getattr(backend, "kind", "") not in ("chat", "vlm") or not hasattr(backend, "_encode"):
        raise ConfigError(f"--base {base_spec} is not a causal LM or a vision-language model")
    if backend.kind == "chat" and any(e.images for e in examples):
        raise ConfigError(f"--base {base_spec} is a text-only model, but the {target} examples carry frame images; "
                          "use a vision-language base")

    rows, skipped, truncated = [], [], 0
    for example in examples:
        try:
            encoded, cut = encode_example(backend, example, max_tokens=settings.max_tokens, image_size=settings.image_size)
        except UserError as exc:
            skipped.append(str(exc))
            continue
        truncated += cut
        rows.append(encoded)
    if not rows:
        raise UserError(f"no trainable example: {skipped[0] if skipped else 'none given'}")

    held_out = []
    for example in eval_examples:
        try:
            held_out.append(encode_example(backend, example, max_tokens=settings.max_tokens,
                                           image_size=settings.image_size)[0])
        except UserError as exc:
            skipped.append(f"held-out {exc}")

    torch.manual_seed(settings.seed)
    model = _peft_model(backend.model.train(), settings)
    before = _mean_loss(model, held_out) if held_out else None
    accumulation = max(1, settings.batch_size)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = max(1, math.ceil(len(rows) / (accumulation * world)))
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=accumulation,
        learning_rate=settings.lr if settings.lr is not None else DEFAULT_LR.get(target, 2e-5),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type=settings.scheduler,
        weight_decay=settings.weight_decay,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    log = out / "loss.jsonl"
    checkpoint = _last_checkpoint(out / "checkpoints") if resume else None
    if checkpoint is None:
        log.unlink(missing_ok=True)
    else:
        _trim_log(log, int(Path(checkpoint).name.rsplit("-", 1)[-1]))
    trainer = _trainer_class(settings)(model=model, args=args, train_dataset=_Examples(rows), data_collator=_collate,
                                       callbacks=[_log_callback(log, on_step)])
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for quiet in (PrinterCallback, ProgressCallback):  # our log file and progress bar say it
        trainer.remove_callback(quiet)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    after = _mean_loss(model, held_out) if held_out else None

    adapter = out / "adapter"
    if trainer.is_world_process_zero():
        model.save_pretrained(str(adapter))
        write_json_atomic(adapter / ADAPTER_INFO, {"base": base_spec, "target": target,
                                                   "settings": asdict(settings)})
    merged_path = None
    if merge and trainer.is_world_process_zero():
        merged_path = out / "merged"
        merged = model.merge_and_unload()
        merged.save_pretrained(str(merged_path))
        (backend.processor if backend.kind == "vlm" else backend.tokenizer).save_pretrained(str(merged_path))
        if backend.kind == "vlm":
            backend.tokenizer.save_pretrained(str(merged_path))
        write_json_atomic(merged_path / MERGED_INFO, {"base": base_spec, "target": target,
                                                      "settings": asdict(settings)})
    losses = [json.loads(line)["loss"] for line in log.read_text("utf-8").splitlines() if line.strip()] if log.is_file() else []
    if trainer.is_world_process_zero() and log.is_file():
        _plot(log, out / "loss.png")
    result = TrainResult(out=out, steps=trainer.state.global_step, examples=len(rows), skipped=skipped,
                         truncated=truncated, first_loss=losses[0] if losses else None,
                         last_loss=losses[-1] if losses else None, seconds=seconds, resumed_from=checkpoint,
                         merged=merged_path, eval_loss_before=before, eval_loss_after=after)
    if trainer.is_world_process_zero():
        write_json_atomic(out / "train_summary.json", {
            "base": base_spec, "target": target, "examples": len(rows), "skipped": skipped, "truncated": truncated,
            "steps": result.steps, "steps_per_epoch": steps_per_epoch, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "eval_loss_before": before, "eval_loss_after": after,
            "held_out": len(held_out), "seconds": round(seconds, 2), "resumed_from": checkpoint,
            "world_size": world, "settings": asdict(settings),
        })
    return result


def _mean_loss(model: Any, rows: Sequence[dict[str, Any]]) -> float:
    """Mean per-token loss over ``rows`` (token-weighted), without dropout or gradients."""
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for row in rows:
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in row.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    if was_training:
        model.train()
    return total / max(tokens, 1)


def _trim_log(log: Path, step: int) -> None:
    """Drop the log lines a killed run wrote after its last checkpoint (they are redone)."""
    if not log.is_file():
        return
    keep = [line for line in log.read_text("utf-8").splitlines() if line.strip() and json.loads(line)["step"] <= step]
    log.write_text("".join(line + "\n" for line in keep), "utf-8")


def trained_base(folder: str | Path) -> str | None:
    """The base spec a folder written by ``train`` (adapter or merged checkpoint) was trained
    from, or None for any other folder (or a non-folder)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return None
    info = read_adapter_info(root)
    if info is None and (root / MERGED_INFO).is_file():
        try:
            info = json.loads((root / MERGED_INFO).read_text("utf-8"))
        except (OSError, ValueError):
            info = None
    base = info.get("base") if isinstance(info, dict) else None
    return base if isinstance(base, str) else None


def read_adapter_info(folder: str | Path) -> dict[str, Any] | None:
    """The base spec an adapter folder written by ``train`` names, or None for other folders."""
    path = Path(folder) / ADAPTER_INFO
    if not (Path(folder) / "adapter_config.json").is_file() or not path.is_file():
        return None
    return json.loads(path.read_text("utf-8"))
