"""The SQLite response cache and CachedModel, over the real tiny chat model."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image
from pydantic import BaseModel, Field

import videoespresso

from videoespresso.models import ChatModel, load_model, user
from videoespresso.models.cache import CachedModel, ResponseCache, cache_key
from videoespresso.schema import Generation, GenerationSettings

GREEDY = GenerationSettings(max_new_tokens=6)


class CountingModel:
    """The real backend, counting the conversations that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.spec = inner.spec
        self.calls = 0
        self.batches: list[int] = []

    def generate(self, conversations, settings=None, schema=None):
        self.calls += len(conversations)
        self.batches.append(len(conversations))
        return self.inner.generate(conversations, settings, schema)


class Verdict(BaseModel):
    letter: Literal["A", "B", "C", "D"]
    note: str = Field(max_length=8)


@pytest.fixture()
def counting(tiny_llm):
    return CountingModel(tiny_llm)


def _convs(*texts: str):
    return [[user(t)] for t in texts]


def test_second_identical_call_makes_no_model_call(counting, tmp_path):
    model = CachedModel(counting, ResponseCache(tmp_path / "cache.sqlite"))
    first = model.generate(_convs("a cat", "a dog"), GREEDY)
    assert counting.calls == 2
    assert [g.cached for g in first] == [False, False]
    second = model.generate(_convs("a cat", "a dog"), GREEDY)
    assert counting.calls == 2
    assert [g.cached for g in second] == [True, True]
    assert [g.text for g in second] == [g.text for g in first]
    assert all(isinstance(g, Generation) and g.settings == GREEDY for g in second)
    stats = model.cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (2, 2, 2)
    assert stats["hit_rate"] == 0.5 and stats["size_bytes"] > 0


def test_only_misses_reach_the_backend_in_one_batch_and_order_is_kept(counting, tmp_path):
    model = CachedModel(counting, ResponseCache(tmp_path / "cache.sqlite"))
    [known] = model.generate(_convs("b"), GREEDY)
    out = model.generate(_convs("a", "b", "c", "a"), GREEDY)
    # "a" twice in one batch is sent once; "b" is a hit.
    assert counting.batches == [1, 2]
    assert [g.cached for g in out] == [False, True, False, True]
    assert out[1].text == known.text
    assert out[0].text == out[3].text
    direct = counting.inner.generate(_convs("c"), GREEDY)
    assert out[2].text == direct[0].text


def test_non_deterministic_calls_are_not_cached(counting, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    model = CachedModel(counting, cache)
    sampled = GenerationSettings(max_new_tokens=4, temperature=0.8)
    assert not sampled.deterministic
    model.generate(_convs("x"), sampled)
    model.generate(_convs("x"), sampled)
    assert counting.calls == 2
    assert len(cache) == 0 and cache.hits == cache.misses == 0
    seeded = GenerationSettings(max_new_tokens=4, temperature=0.8, seed=3)
    model.generate(_convs("x"), seeded)
    model.generate(_convs("x"), seeded)
    assert counting.calls == 3 and len(cache) == 1


def test_different_prompt_settings_or_schema_miss(counting, tmp_path):
    model = CachedModel(counting, ResponseCache(tmp_path / "cache.sqlite"))
    model.generate(_convs("q"), GREEDY)
    model.generate(_convs("q2"), GREEDY)
    model.generate(_convs("q"), GenerationSettings(max_new_tokens=7))
    model.generate(_convs("q"), GenerationSettings(max_new_tokens=6, stop=["."]))
    model.generate([[user("q")]], GREEDY, schema=Verdict)
    model.generate([[user("q")]], GREEDY, schema={"type": "object"})
    assert counting.calls == 6
    model.generate(_convs("q"), GREEDY)
    assert counting.calls == 6


def test_schema_hits_carry_the_parsed_object(counting, tmp_path):
    model = CachedModel(counting, ResponseCache(tmp_path / "cache.sqlite"))
    settings = GenerationSettings(max_new_tokens=40)
    [fresh] = model.generate(_convs("verdict?"), settings, schema=Verdict)
    [hit] = model.generate(_convs("verdict?"), settings, schema=Verdict)
    assert counting.calls == 1 and hit.cached
    assert hit.text == fresh.text
    assert type(hit.parsed) is type(fresh.parsed)
    assert hit.parsed == fresh.parsed and hit.error == fresh.error
    if fresh.error is None:
        assert isinstance(hit.parsed, Verdict)


def test_cache_survives_reopening_the_file(counting, tmp_path):
    path = tmp_path / "cache.sqlite"
    first_cache = ResponseCache(path)
    [first] = CachedModel(counting, first_cache).generate(_convs("persist"), GREEDY)
    first_cache.close()
    reopened = CachedModel(counting, ResponseCache(path))
    [again] = reopened.generate(_convs("persist"), GREEDY)
    assert counting.calls == 1
    assert again.cached and again.text == first.text
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_images_enter_the_key_by_mode_size_and_pixels():
    red = Image.new("RGB", (8, 6), (255, 0, 0))
    same = Image.new("RGB", (8, 6), (255, 0, 0))
    changed = red.copy()
    changed.putpixel((3, 2), (254, 0, 0))
    key = lambda img: cache_key("tiny:qwen2-vl", GREEDY, [user("look", [img])])  # noqa: E731
    assert key(red) == key(same)
    assert key(red) != key(changed)
    assert key(red) != key(red.convert("RGBA"))
    assert key(red) != key(Image.new("RGB", (6, 8), (255, 0, 0)))
    assert key(red) != cache_key("tiny:qwen2", GREEDY, [user("look", [red])])


def test_cached_model_forwards_attributes(counting, tiny_llm, tmp_path):
    model = CachedModel(tiny_llm, ResponseCache(tmp_path / "c.sqlite"))
    assert model.spec == "tiny:qwen2"
    assert model.kind == tiny_llm.kind
    assert model.tokenizer is tiny_llm.tokenizer
    assert isinstance(model, ChatModel)
    with pytest.raises(AttributeError):
        model.no_such_attribute  # noqa: B018


def test_load_model_wraps_with_the_cache(tmp_path):
    model = load_model("openai:m@http://127.0.0.1:9/v1", cache=tmp_path / "c.sqlite")
    assert isinstance(model, CachedModel)
    assert model.spec == "openai:m@http://127.0.0.1:9/v1"
    assert model.endpoint == "http://127.0.0.1:9/v1"
    shared = ResponseCache(tmp_path / "shared.sqlite")
    assert load_model("openai:m@http://127.0.0.1:9/v1", cache=shared).cache is shared


_WRITER = textwrap.dedent(
    """
    import sys
    from videoespresso.models.cache import ResponseCache
    from videoespresso.schema import Generation, GenerationSettings
    cache = ResponseCache(sys.argv[1])
    tag, n = sys.argv[2], int(sys.argv[3])
    settings = GenerationSettings()
    for i in range(n):
        cache.put(f"{tag}-{i}", Generation(text=f"{tag} {i}", model="w", settings=settings))
        print(i, flush=True)
    """
)


def _writer(path: Path, tag: str, n: int) -> subprocess.Popen:
    # The child must import the same videoespresso as this process.
    src = str(Path(videoespresso.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), tag, str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_processes_share_one_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResponseCache(path).close()
    writers = [_writer(path, tag, 150) for tag in ("p1", "p2", "p3")]
    for proc in writers:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    cache = ResponseCache(path)
    assert len(cache) == 450
    assert cache.get("p2-149").text == "p2 149"


def test_a_killed_writer_loses_at_most_the_call_in_flight(tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = _writer(path, "k", 100_000)
    try:
        for line in proc.stdout:
            if int(line) >= 40:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    cache = ResponseCache(path)
    # Every put that printed its index had committed.
    assert len(cache) >= 41
    assert all(cache.get(f"k-{i}") is not None for i in range(41))


def test_a_rewritten_local_checkpoint_does_not_serve_old_replies(tmp_path):
    """hf:<folder> replies are keyed on the folder's weight files too: retraining (or copying new
    weights) into the same folder misses the cache, an untouched folder hits it."""
    import os
    import shutil

    from videoespresso import load_model
    from videoespresso.models.tiny import build_tiny

    folder = tmp_path / "ckpt"
    shutil.copytree(build_tiny("qwen2"), folder)
    db = tmp_path / "replies.sqlite"
    conv = [[user("say something")]]

    def calls_for_one_generate() -> int:
        model = load_model(f"hf:{folder}", cache=db)
        model.generate(conv, GREEDY)
        return model.backend.calls

    assert calls_for_one_generate() == 1
    assert calls_for_one_generate() == 0  # same weights: served from the cache
    weights = next(folder.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert calls_for_one_generate() == 1  # rewritten weights: asked again
