"""The UI's rendering without a browser: how times read, and a build's records read one by one."""

from __future__ import annotations

import json

import pytest

from videoespresso.formats.dataset import read_dataset
from videoespresso.templating import render, seconds


@pytest.mark.parametrize("value, shown", [
    (0, "0.00 s"), (7.254321, "7.25 s"), (59.5, "59.50 s"), (75.25, "1:15.2"), (83.4567, "1:23.5"),
    (3725.0, "1:02:05"), ("soon", "soon"), (None, "None"),
])
def test_times_read_as_seconds_or_minutes(value, shown):
    assert seconds(value) == shown


def test_every_value_a_template_prints_is_escaped():
    html = render("videoespresso.ui", "message.html", title="<b>t</b>", error='"><img src=x onerror=alert(1)>',
                  hint="<script>", option="</code>")
    assert "<img" not in html and "<script>" not in html and "<b>t</b>" not in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_wrong_typed_record_is_named_and_the_rest_are_read(tmp_path):
    good = {"qa": {"id": "a", "video": "v.mp4", "question": "q", "answer": "x", "task": "Causal Inference"},
            "cot": {"core_frames": [{"index": 1, "seconds": 0.5}]}, "options": ["x", "y", "z", "w"],
            "correct_answer": "A"}
    bad = json.loads(json.dumps(good))
    bad["qa"]["id"], bad["cot"]["core_frames"][0]["seconds"] = "b", "half a second"
    path = tmp_path / "dataset.jsonl"
    lines = [json.dumps(good).encode(), json.dumps(bad).encode(), b"{oops", b"[1]", '{"caf\xe9": 1}'.encode("latin-1")]
    path.write_bytes(b"\n".join(lines + [json.dumps(dict(good, qa=dict(good["qa"], id="c"))).encode()]) + b"\n")
    records, problems = read_dataset(path)
    assert [r.qa.id for r in records] == ["a", "c"]
    assert [(p.line, p.id) for p in problems] == [(2, "b"), (3, None), (4, None), (5, None)]
    assert problems[0].reason.startswith("cot.core_frames.0.seconds: Input should be a valid number")
    assert problems[1].reason.startswith("not valid JSON") and problems[2].reason == "not a JSON object"
    assert problems[3].reason == "not UTF-8 text (byte 6)"
