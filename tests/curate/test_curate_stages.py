"""Stages 4 (group), 5 (qa) and 9 (temporal) one by one: typed records, the per-video caption
pool stored once, and the pool embedded once per video.

The chat model is :class:`ScriptedChat`, a real ``ChatModel`` that answers from a script (the
replies a model would give); the embedder is the real MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videoespresso.config import load_config
from videoespresso.curate import GenerateQA, GroundInTime, GroupCaptions, ModelPool, run_build
from videoespresso.engine import LocalExecutor, ResultKey, Store, StoredResult
from videoespresso.errors import UserError
from videoespresso.models.protocols import ChatModel
from videoespresso.schema import Generation, GenerationSettings, GroupItem, PoolRef, QAItem

CAPTIONS = [
    "A man in a red jacket opens the door of a parked car.",
    "A woman slices tomatoes on a wooden board in a kitchen.",
    "A dog runs across a snowy field toward a frozen lake.",
    "A cyclist rides past a bakery on a rainy street.",
    "Two children build a sandcastle on a sunny beach.",
    "An old man feeds pigeons in a city square.",
]


class ScriptedChat:
    """A ChatModel that answers each conversation with the next scripted reply."""

    def __init__(self, replies: list[str], spec: str = "scripted") -> None:
        self.spec = spec
        self.replies = list(replies)
        self.prompts: list[str] = []

    def generate(self, conversations, settings=None, schema=None):
        out = []
        for conversation in conversations:
            self.prompts.append(conversation[-1].text)
            out.append(Generation(text=self.replies.pop(0), model=self.spec, settings=settings or GenerationSettings()))
        return out


class CountingEmbedder:
    """The real embedder, counting its calls and the texts it was given."""

    def __init__(self, inner) -> None:
        self.inner, self.spec = inner, inner.spec
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return self.inner.embed(texts)


def _video(video_id: str, captions=CAPTIONS, kept=None) -> dict:
    return {
        "id": video_id, "video": f"/videos/{video_id}", "video_path": video_id,
        "info": {"duration_s": float(len(captions))},
        "frames": [{"index": 25 * i, "seconds": float(i), "path": f"frames/{video_id}/f{i}.jpg"} for i in range(len(captions))],
        "captions": list(captions),
        "kept": list(range(len(captions))) if kept is None else kept,
    }


def _groups(tmp_path: Path, *videos: dict) -> list[dict]:
    stage = GroupCaptions(tmp_path, size=3, min_frames=2)
    return [g for v in videos for g in stage.process_item(v)]


def test_group_writes_each_video_pool_once_and_groups_refer_to_it(tmp_path):
    groups = _groups(tmp_path, _video("a.mp4", kept=[0, 1, 3, 4, 5]), _video("b.mp4"))
    assert [g["id"] for g in groups] == ["a.mp4#g000", "a.mp4#g001", "b.mp4#g000", "b.mp4#g001"]
    for g in groups:
        record = GroupItem.model_validate(g)
        assert "all_frames" not in g and "all_captions" not in g
        assert len(record.frames) == len(record.captions) <= 3
    refs = {g["video_id"]: PoolRef.model_validate(g["pool"]) for g in groups}
    assert {g["pool"]["sha"] for g in groups if g["video_id"] == "a.mp4"} == {refs["a.mp4"].sha}
    pool_files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "pools").rglob("*.json"))
    assert pool_files == sorted(r.path for r in refs.values())
    pool = json.loads((tmp_path / refs["a.mp4"].path).read_text())
    # the pool holds every sampled frame, the redundant one (2) too: retrieval ranks them all
    assert pool["captions"] == CAPTIONS and [f["index"] for f in pool["frames"]] == [0, 25, 50, 75, 100, 125]
    assert [f["index"] for f in groups[0]["frames"]] == [0, 25, 75]
    # another caption gives another pool, so everything downstream gets other store keys
    changed = _groups(tmp_path, _video("a.mp4", [*CAPTIONS[:5], "A new caption."]))
    assert changed[0]["pool"]["sha"] != refs["a.mp4"].sha


def _qa_reply(frames: list[int]) -> str:
    return json.dumps({"pairs": [
        {"question": "Why does the man open the car door?", "answer": "To leave.", "task": "Causal Inference", "frames": frames},
        {"question": "What happens after the tomatoes?", "answer": "A dog runs.", "task": "Event Process", "frames": [1]},
    ]})


def test_qa_writes_typed_items_that_carry_the_pool_reference(tmp_path):
    groups = _groups(tmp_path, _video("a.mp4"))
    chat = ScriptedChat([_qa_reply([1, 3]), _qa_reply([3, 3]), "no json here", "still none"])
    assert isinstance(chat, ChatModel)
    stage = GenerateQA(ModelPool(preloaded={"scripted": chat}), "scripted", pairs_per_group=2, constrained=False)
    stage.setup()
    broken = {**groups[0], "id": "broken#g000", "pool": None}
    out = stage.process([*groups, broken])
    by_id = {o["id"]: o for o in out}
    assert sorted(by_id) == ["a.mp4#g000/q0", "a.mp4#g000/q1", "a.mp4#g001/q0", "a.mp4#g001/q1", "broken#g000"]
    assert "not a caption group, it does not match the schema: pool" in by_id["broken#g000"]["_failure"]["detail"]
    assert by_id["broken#g000"]["_failure"]["reason"] == "bad_item"
    first = QAItem.model_validate(by_id["a.mp4#g000/q0"])
    assert first.source == "a.mp4#g000" and first.pool == PoolRef.model_validate(groups[0]["pool"])
    assert [f.index for f in first.qa_frames] == [0, 50] and first.qa_model == "scripted"
    second = by_id["a.mp4#g001/q0"]
    assert [f["index"] for f in second["qa_frames"]] == [125] and second["pool"] == groups[1]["pool"]
    assert "[1] (0.0 s) A man in a red jacket" in chat.prompts[0]
    # prose, then prose again after the retry: that group fails with both replies kept
    out = stage.process([groups[0]])
    assert out[0]["_failure"]["reason"] == "invalid_json" and "still none" in out[0]["_failure"]["raw"]


def _temporal_items(groups: list[dict]) -> list[dict]:
    items = []
    for g in groups:
        for k in range(3):
            caption = g["captions"][k % len(g["captions"])]
            items.append({
                **g, "id": f"{g['id']}/q{k}", "_from": g["id"],
                "core_captions": [caption],
                "key_objects_grounded": [{"name": "tomatoes", "boxes": [], "frame": None}],
                "evidence": "A <obj_start>dog<obj_end><box_start>[[50, 50, 10, 10]]<box_end> runs on snow.",
            })
    return items


def test_temporal_embeds_each_pool_once_and_reuses_it_across_runs(tmp_path, minilm):
    groups = _groups(tmp_path, _video("a.mp4"), _video("b.mp4", list(reversed(CAPTIONS))))
    items = _temporal_items(groups)
    embedder = CountingEmbedder(minilm)
    pool = ModelPool(preloaded={"minilm": embedder})
    stage = GroundInTime(tmp_path, pool, "minilm")
    stage.setup()
    out = stage.process(items[:6]) + stage.process(items[6:])
    # one call per pool (all six captions) and one per batch for the items' own texts, 12 items
    assert embedder.calls == [6, 18, 6, 18] and stage.model_calls == 4
    for item in out:
        [core] = item["core_retrieval"]
        # a core caption is one of the pool's, so retrieval finds its own frame
        assert core["similarity"] > 0.99
        assert core["frame"]["index"] == 25 * (CAPTIONS.index(item["core_captions"][0])
                                              if item["video_id"] == "a.mp4"
                                              else list(reversed(CAPTIONS)).index(item["core_captions"][0]))
        [obj] = item["key_objects_grounded"]
        tomatoes = 25 if item["video_id"] == "a.mp4" else 100
        assert obj["frame_source"] == "retrieval" and obj["frame"]["index"] == tomatoes
        dog = 50 if item["video_id"] == "a.mp4" else 75
        assert len(item["evidence_frames"]) == 3 and dog in [e["frame"]["index"] for e in item["evidence_frames"]]
    # a new worker (or a rerun) reads the pools' matrices from the build folder: same outputs
    embedder.calls.clear()
    fresh = GroundInTime(tmp_path, ModelPool(preloaded={"minilm": embedder}), "minilm")
    fresh.setup()
    assert fresh.process(items[:6]) + fresh.process(items[6:]) == out
    assert embedder.calls == [18, 18]


def test_temporal_fails_an_item_whose_pool_is_gone_and_goes_on(tmp_path, minilm):
    groups = _groups(tmp_path, _video("a.mp4"), _video("b.mp4", list(reversed(CAPTIONS))))
    items = _temporal_items(groups)
    for path in (tmp_path / "pools" / "b.mp4").iterdir():
        path.unlink()
    old = {k: v for k, v in items[0].items() if k != "pool"}
    old["id"] = "old/q0"
    stage = GroundInTime(tmp_path, ModelPool(preloaded={"minilm": minilm}), "minilm")
    result = LocalExecutor(Store(tmp_path / "s.sqlite"), progress=False).run([stage], [*items, old])
    st = result.stage("temporal")
    assert st.ok == 6 and st.failure_reasons == {"missing_caption_pool": 6, "no_caption_pool": 1}
    details = {f["id"]: f["detail"] for f in st.failures}
    assert "rebuild from stage 4 (group)" in details["old/q0"] and "b.mp4" in details["b.mp4#g000/q0"]


def test_an_older_build_folder_gets_a_message_not_an_empty_export(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"x")
    out = tmp_path / "build"
    with Store(out / "store.sqlite") as store:
        key = ResultKey("group", "1", "", "p", "i")
        store.put_many([(key, StoredResult(key.key, "group", "a.mp4", "ok", [{"id": "a.mp4#g000"}]))])
    (out / "dataset.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match=r"made by another version of videoespresso: stage 4 \(group\) is stored at "
                                        r"version 1, this version writes 2.*--stages 4-10"):
        run_build(videos, out, load_config("tiny"), stages="5-10", progress=False)
    assert (out / "dataset.jsonl").read_text() == "{}\n"
