import json

import pytest

from videoespresso.errors import FormatError
from videoespresso.formats import read_bench, read_train, write_bench, write_train
from videoespresso.formats.bench import bench_item_to_official
from videoespresso.formats.jsonl import append_jsonl, read_jsonl


def official_item(i=0, **over):
    item = {
        "video_path": f"all_video/XD-Violence/clip_{i}.mp4",
        "question": f"Why does the man run in clip {i}?",
        "options": ["(A): He is late.", "(B): A dog chases him.", "(C): It rains.", "(D): He trains."],
        "correct_answer": "(B)",
        "answer": "Because a dog chases him.",
        "evidence": "The <obj_start>dog<obj_end><box_start>[[50.0, 60.0, 20.0, 30.0]]<box_end> runs.",
        "task": "Causal Inference",
        "core_frames_paths": ["frames/480.jpg", "frames/510.jpg"],
        "core_frames_captions": ["The image depicts a man.", "The image depicts a dog."],
        "key_items": ["dog", "man"],
        "some_future_field": {"nested": [1, 2]},
    }
    item.update(over)
    return item


def test_bench_file_with_extra_fields_round_trips_losslessly(tmp_path):
    raw = [official_item(i) for i in range(3)]
    path = tmp_path / "bench_hard.json"
    path.write_text(json.dumps(raw))
    items = read_bench(path)
    assert [i.id for i in items] == ["0", "1", "2"]
    assert items[0].options[1] == "A dog chases him."
    assert items[0].correct_answer == "B"
    assert items[0].extra == {"key_items": ["dog", "man"], "some_future_field": {"nested": [1, 2]}}
    assert [bench_item_to_official(i) for i in items] == raw
    out = tmp_path / "again.json"
    write_bench(items, out)
    assert json.loads(out.read_text()) == raw
    assert read_bench(out) == items


def test_bench_ids_from_file_and_jsonl_input(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(json.dumps(official_item(i, id=f"q{i}")) for i in range(2)))
    items = read_bench(path)
    assert [i.id for i in items] == ["q0", "q1"]
    assert bench_item_to_official(items[1])["id"] == "q1"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"question": None}, "item 1"),
        ({"options": ["(A): a", "(B): b", "(C): c"]}, "expected 4 options, got 3"),
        ({"correct_answer": "(E)"}, "bad correct_answer '(E)'"),
        ({"correct_answer": "B and C"}, "bad correct_answer"),
    ],
)
def test_malformed_bench_names_item_and_problem(tmp_path, change, message):
    bad = official_item(1)
    for key, value in change.items():
        if value is None:
            del bad[key]
        else:
            bad[key] = value
    path = tmp_path / "bench.json"
    path.write_text(json.dumps([official_item(0), bad]))
    with pytest.raises(FormatError, match="item 1") as info:
        read_bench(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_and_broken_bench_files(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        read_bench(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("[{\"video_path\": ")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_bench(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(FormatError, match="empty"):
        read_bench(empty)


def test_duplicate_ids_are_reported(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps([official_item(0, id="x"), official_item(1, id="x")]))
    with pytest.raises(FormatError, match="duplicate id 'x'"):
        read_bench(path)


@pytest.mark.parametrize("key", ["path", "keyframes_path"])
def test_both_train_spellings_round_trip(tmp_path, key):
    raw = [
        {
            "video_path": "v/a.mp4",
            key: ["kf/1.jpg", "kf/2.jpg"],
            "caption": ["c1", "c2"],
            "question": "What happens?",
            "answer": "A man opens a door.",
            "evidence": "<obj_start>man<obj_end><box_start>[]<box_end> opens a door.",
            "task": "Event Process",
            "extra_field": 7,
        }
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(raw))
    items = read_train(path)
    assert items[0].keyframes == ["kf/1.jpg", "kf/2.jpg"]
    assert items[0].keyframes_key == key
    assert items[0].captions == ["c1", "c2"]
    assert items[0].extra == {"extra_field": 7}
    out = tmp_path / "out.json"
    write_train(items, out)
    assert json.loads(out.read_text()) == raw


def test_train_item_missing_answer(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"question": "q", "path": []}]))
    with pytest.raises(FormatError, match="item 0: missing field 'answer'"):
        read_train(path)


def test_jsonl_reader_reports_bad_lines_and_keeps_going(tmp_path):
    path = tmp_path / "p.jsonl"
    append_jsonl(path, {"id": "1"})
    with open(path, "a") as handle:
        handle.write('{"id": "2", "out\n')
    append_jsonl(path, {"id": "3"})
    rows = list(read_jsonl(path))
    assert rows[0] == (1, {"id": "1"}, None)
    assert rows[1][1] is None and "line 2" in rows[1][2]
    assert rows[2] == (3, {"id": "3"}, None)
