"""`videoespresso train`: exact label masks, learning, adapter = merged, resume after SIGKILL, specs.

Tiny random-weight checkpoints prove the plumbing (their tied 64-wide embeddings cap how sharp a
LoRA-adapted distribution can get, so their loss only falls); the real SmolLM2 proves learning
(slow: it overfits 8 examples and reproduces their targets).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import videoespresso
from videoespresso.cli import main as cli_main
from videoespresso.errors import UserError
from videoespresso.schema import SFTExample, SFTMessage
from videoespresso.train.lora import TrainSettings, encode_example, read_adapter_info, train_lora

SRC = str(Path(videoespresso.__file__).resolve().parents[1])


def _selector_examples(n: int = 8) -> list[SFTExample]:
    return [
        SFTExample(id=str(i), target="selector", messages=[
            SFTMessage(role="user", content=f"Question {i}: which frames show the cat number {i}?"),
            SFTMessage(role="assistant", content=json.dumps({"frames": [i % 4 + 1, i % 4 + 3]})),
        ])
        for i in range(n)
    ]


def _frame_examples(root: Path, n: int = 4) -> list[SFTExample]:
    examples = []
    for i in range(n):
        paths = []
        for j in range(2):
            path = root / f"f{i}_{j}.png"
            Image.new("RGB", (64, 48), (40 * i, 80 * j, 120)).save(path)
            paths.append(str(path))
        examples.append(SFTExample(id=f"v{i}", target="stage1", images=paths, messages=[
            SFTMessage(role="user", content=f"What moves in clip {i}? Please provide evidence helpful to answer the question."),
            SFTMessage(role="assistant", content=f"The square in clip {i} moves to the left."),
        ]))
    return examples


def _write(examples: list[SFTExample], path: Path) -> Path:
    path.write_text("".join(e.model_dump_json() + "\n" for e in examples))
    return path


FAST = dict(batch_size=2, save_steps=1000, warmup_ratio=0.0)


def test_labels_cover_the_target_only_text(tiny_llm):
    example = _selector_examples(1)[0]
    inputs, cut = encode_example(tiny_llm, example, max_tokens=512, image_size=224)
    ids, labels = inputs["input_ids"][0].tolist(), inputs["labels"][0].tolist()
    target = tiny_llm.tokenizer(example.messages[-1].content, add_special_tokens=False)["input_ids"] + [tiny_llm._eos_ids[0]]
    start = len(ids) - len(target)
    assert not cut and ids[start:] == target and labels[start:] == target
    assert set(labels[:start]) == {-100}
    # the prompt is exactly what inference renders for the same turns
    from videoespresso.models.protocols import user

    rendered = tiny_llm._render([user(example.messages[0].content)], 0)
    assert tiny_llm.tokenizer(rendered, add_special_tokens=False)["input_ids"] == ids[:start]


def test_labels_mask_image_tokens_vlm(tiny_vlm, tmp_path):
    example = _frame_examples(tmp_path, 1)[0]
    inputs, _ = encode_example(tiny_vlm, example, max_tokens=4096, image_size=224)
    ids, labels = inputs["input_ids"][0], inputs["labels"][0]
    image_token = tiny_vlm.model.config.image_token_id
    assert int((ids == image_token).sum()) > 0
    assert bool((labels[ids == image_token] == -100).all())
    target = tiny_vlm.tokenizer(example.messages[-1].content, add_special_tokens=False)["input_ids"]
    kept = labels[labels != -100].tolist()
    assert kept[:-1] == target and kept[-1] == tiny_vlm._eos_ids[0]
    assert "pixel_values" in inputs and "image_grid_thw" in inputs


def test_long_target_is_truncated_and_counted_long_prompt_is_named(tiny_llm):
    long = SFTExample(id="long", target="stage2", messages=[
        SFTMessage(role="user", content="Answer."), SFTMessage(role="assistant", content="word " * 400)])
    inputs, cut = encode_example(tiny_llm, long, max_tokens=64, image_size=224)
    assert cut and inputs["input_ids"].shape[1] == 64
    huge = SFTExample(id="huge", target="stage2", messages=[
        SFTMessage(role="user", content="word " * 400), SFTMessage(role="assistant", content="ok")])
    with pytest.raises(UserError, match="example huge: the prompt alone"):
        encode_example(tiny_llm, huge, max_tokens=64, image_size=224)


def test_training_lowers_loss_and_adapter_equals_merged(tmp_path):
    out = tmp_path / "run"
    examples = _selector_examples()
    result = train_lora(examples, "tiny:qwen2", out, target="selector", merge=True, eval_examples=examples[:2],
                        settings=TrainSettings(lr=1e-2, epochs=4, scheduler="constant", **FAST))
    assert result.steps == 16 and result.examples == 8
    assert result.eval_loss_after < result.eval_loss_before
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 17))
    assert (out / "loss.png").stat().st_size > 1000
    assert read_adapter_info(out / "adapter")["base"] == "tiny:qwen2"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 16 and summary["settings"]["lora_r"] == 16

    from videoespresso import load_model

    adapter, merged, base = (load_model(s) for s in (f"hf:{out / 'adapter'}", f"hf:{out / 'merged'}", "tiny:qwen2"))
    batch = adapter.tokenizer(["Question 3: which frames?"], return_tensors="pt")
    with torch.no_grad():
        a, m, b = (x.model(**batch).logits for x in (adapter, merged, base))
    assert torch.allclose(a, m, atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-4)  # the adapter changed the model


def test_vlm_stage_trains_and_loads_by_spec_in_eval(tmp_path, capsys):
    from videoespresso.video.synth import make_test_video

    out = tmp_path / "stage1"
    examples = _frame_examples(tmp_path)
    data = _write(examples, tmp_path / "stage1.jsonl")
    cli_main(["train", "stage1", "--data", str(data), "--base", "tiny:qwen2-vl", "--out", str(out),
              "--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--eval-data", str(data)])
    text = " ".join(capsys.readouterr().out.split())
    assert "4 stage1 examples, 2 steps" in text and "held-out loss" in text
    # eval loads the trained adapter by spec (its base named in videoespresso_adapter.json)
    make_test_video(tmp_path / "videos" / "clip.mp4", "moving", seconds=1.0)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"video_path": "clip.mp4", "question": "What moves?",
                                  "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
                                  "correct_answer": "(A)", "task": "Causal Inference"}]))
    pred = tmp_path / "pred.jsonl"
    cli_main(["eval", "--bench", str(bench), "--video-root", str(tmp_path / "videos"), "--model",
              f"hf:{out / 'adapter'}", "--out", str(pred), "--frames", "2", "--max-new-tokens", "3", "--profile", "tiny"])
    # trained on a tiny: base, the adapter's weights are random too, and eval says so
    assert f"random-weightmodels:model(hf:{out / 'adapter'})".replace(" ", "") in "".join(capsys.readouterr().err.split())
    line = json.loads(pred.read_text())
    assert line["model"] == f"hf:{out / 'adapter'}" and "error" not in line
    # ask takes it through the config, as the two-stage reasoner's model
    config = tmp_path / "trained.yaml"
    config.write_text(f"models:\n  reasoner: hf:{out / 'adapter'}\ngeneration:\n  max_new_tokens: 4\n")
    result = tmp_path / "ask.json"
    cli_main(["ask", str(tmp_path / "videos" / "clip.mp4"), "What moves?", "--selector", "uniform", "--frames", "2",
              "--profile", "tiny", "--config", str(config), "--json", str(result)])
    assert f"hf:{out / 'adapter'}" in result.read_text()
    assert json.loads(result.read_text())["random_weights"] is True


def test_lr_is_never_zero_on_any_step():
    from videoespresso.train.lora import SCHEDULERS, lr_factor

    for scheduler in SCHEDULERS:
        for total in (1, 2, 3, 10, 34, 100, 1000):
            for ratio in (0.0, 0.03, 0.1, 0.5):
                factors = [lr_factor(s, total, ratio, scheduler) for s in range(total)]
                assert all(0.0 < f <= 1.0 for f in factors), (scheduler, total, ratio, factors[:3])
    # the warm-up is whole steps of the ratio, rounded down: 3 of 100 at 0.03, none of 2
    assert [round(lr_factor(s, 100, 0.03, "cosine"), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(0, 2, 0.03, "cosine") == 1.0


def test_first_step_trains_and_trained_folders_name_their_base(tmp_path, capsys):
    """--max-steps 2 with the paper's 3% warm-up: the first step's learning rate is not 0. The
    adapter and the merged checkpoint both record their tiny: base, so every random-weights
    notice follows them to it (train --base over a merged folder included)."""
    from videoespresso.models.registry import random_weights
    from videoespresso.train.lora import MERGED_INFO

    out = tmp_path / "sel"
    train_lora(_selector_examples(4), "tiny:qwen2", out, target="selector", merge=True,
               settings=TrainSettings(max_steps=2, batch_size=2, save_steps=1000, lr=1e-3))
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["learning_rate"] == pytest.approx(1e-3)
    assert 0 < rows[1]["learning_rate"] < rows[0]["learning_rate"]
    assert json.loads((out / "merged" / MERGED_INFO).read_text())["base"] == "tiny:qwen2"
    assert random_weights(f"hf:{out / 'adapter'}") and random_weights(f"hf:{out / 'merged'}")
    assert not random_weights(f"hf:{tmp_path}") and not random_weights("openai:gpt-4o")
    data = _write(_selector_examples(2), tmp_path / "sel.jsonl")
    cli_main(["train", "selector", "--data", str(data), "--base", f"hf:{out / 'merged'}",
              "--out", str(tmp_path / "again"), "--max-steps", "1", "--batch-size", "2"])
    err = "".join(capsys.readouterr().err.split())
    assert f"random-weightmodels:base(hf:{out / 'merged'})".replace(" ", "") in err


def test_resume_after_sigkill_gives_the_same_adapter(tmp_path):
    data = _write(_selector_examples(), tmp_path / "sel.jsonl")

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "videoespresso", "train", "selector", "--data", str(data), "--base", "tiny:qwen2",
                "--out", str(out), "--epochs", "2", "--batch-size", "2", "--save-steps", "3", "--lr", "5e-3"]

    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert subprocess.run(cmd(full), env=env, capture_output=True, timeout=600).returncode == 0
    dead = subprocess.run(cmd(killed), env={**env, "VIDEOESPRESSO_FAILPOINT": "train:save"}, capture_output=True,
                          timeout=600)
    assert dead.returncode == -signal.SIGKILL and (killed / "checkpoints" / "checkpoint-3").is_dir()
    again = subprocess.run(cmd(killed), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resumed from checkpoint-3" in " ".join(again.stdout.split())

    from safetensors.torch import load_file

    a = load_file(full / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    steps = [json.loads(line)["step"] for line in (killed / "loss.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # no step logged twice


BAD = {
    # cell: (file content or None for a missing file, base, fragment)
    "empty_file": ("", "tiny:qwen2", "holds no examples"),
    "malformed": ("{not json\n", "tiny:qwen2", "not valid JSON"),
    "not_an_example": ('{"id": "1"}\n', "tiny:qwen2", "not an SFT example"),
    "base_is_clip": (None, "tiny:clip", "tiny:clip"),
    "text_base_with_images": ("images", "tiny:qwen2", "text-only model"),
}


@pytest.mark.parametrize("cell", list(BAD))
def test_bad_input_is_one_line(tmp_path, capsys, cell):
    content, base, fragment = BAD[cell]
    path = tmp_path / "data.jsonl"
    target = "selector"
    if content is None:
        _write(_selector_examples(2), path)
    elif content == "images":
        _write(_frame_examples(tmp_path, 1), path)
        target = "stage1"
    else:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", target, "--data", str(path), "--base", base, "--out", str(tmp_path / "o"), "--max-steps", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code == 2 and "Traceback" not in err and fragment in err, err


def test_missing_images_skip_the_example_with_a_reason(tmp_path, capsys, tiny_vlm):
    examples = _frame_examples(tmp_path, 2)
    Path(examples[0].images[1]).unlink()
    result = train_lora(examples, "tiny:qwen2-vl", tmp_path / "o", target="stage1",
                        settings=TrainSettings(max_steps=1, **FAST))
    assert result.examples == 1 and len(result.skipped) == 1
    assert "example v0: image" in result.skipped[0] and "cannot be read" in result.skipped[0]


@pytest.mark.slow
def test_smollm2_overfits_eight_selector_examples(tmp_path, smollm2):
    """Real learning: loss falls by more than an order of magnitude and greedy decoding
    reproduces the training targets."""
    from videoespresso import load_model
    from videoespresso.models.protocols import user
    from videoespresso.schema import GenerationSettings

    examples = _selector_examples()
    out = tmp_path / "smol"
    result = train_lora(examples, "smollm2", out, target="selector", merge=True,
                        settings=TrainSettings(lr=2e-3, batch_size=1, epochs=6, scheduler="constant",
                                               save_steps=1000, warmup_ratio=0.0))
    assert result.last_loss < result.first_loss / 10
    model = load_model(f"hf:{out / 'merged'}")
    replies = model.generate([[user(e.messages[0].content)] for e in examples], GenerationSettings(max_new_tokens=16))
    matches = sum(r.text.strip() == e.messages[1].content for r, e in zip(replies, examples))
    assert matches >= 7, [r.text for r in replies]


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """`torchrun --nproc_per_node 2` on CPU (gloo): the data is sharded, and two processes with
    accumulation 2 follow one process with accumulation 4, step by step."""
    data = _write(_selector_examples(16), tmp_path / "sel.jsonl")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    common = ["train", "selector", "--data", str(data), "--base", "tiny:qwen2", "--lr", "5e-3", "--epochs", "2"]
    one = subprocess.run([sys.executable, "-m", "videoespresso", *common, "--out", str(tmp_path / "one"), "--batch-size", "4"],
                         env=env, capture_output=True, text=True, timeout=600)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", "29533", "-m", "videoespresso", *common, "--out", str(tmp_path / "two"),
                          "--batch-size", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("16 selector examples, 8 steps") == 1  # process 0 reports
    a = [json.loads(line) for line in (tmp_path / "one" / "loss.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "two" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    for x, y in zip(a, b):
        assert abs(x["loss"] - y["loss"]) < 1e-4 and abs(x["learning_rate"] - y["learning_rate"]) < 1e-9
    assert json.loads((tmp_path / "two" / "train_summary.json").read_text())["world_size"] == 2
