"""`videoespresso ask` end to end on a generated clip with the tiny profile."""

import json

import pytest
from PIL import Image

from videoespresso.cli import main
from videoespresso.video.synth import make_test_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ask") / "clip.mp4"
    make_test_video(path, "mixed", fps=8.0)
    return path


def test_ask_selects_reasons_and_draws_a_contact_sheet(tmp_path, clip, capsys):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("select:\n  candidates: 5\n  max_frames: 3\ngeneration:\n  max_new_tokens: 10\n")
    sheet, out = tmp_path / "sheet.png", tmp_path / "ask.json"
    main([
        "ask", str(clip), "What does the square do?", "-o", "moves", "-o", "stays", "-o", "spins",
        "-o", "vanishes", "--selector", "caption-llm", "--reasoner", "two-stage",
        "--config", str(cfg), "--show", str(sheet), "--json", str(out), "--count-flops",
    ])
    captured = capsys.readouterr()
    printed = captured.out
    assert "frames (caption-llm)" in printed and "evidence:" in printed and "answer:" in printed
    assert "chosen option:" in printed
    assert "random-weight models" in captured.err and "reasoner (tiny:" in captured.err
    body = json.loads(out.read_text())
    assert body["random_weights"] is True
    chosen = body["chosen_option"]
    # Random weights: the reply may name no option; when it does, letter and text agree.
    if chosen is not None:
        assert chosen["text"] == ["moves", "stays", "spins", "vanishes"]["ABCD".index(chosen["letter"])]
        assert f"({chosen['letter']}) {chosen['text']}" in printed
    selection, result = body["selection"], body["result"]
    indices = [f["index"] for f in selection["frames"]]
    assert 1 <= len(indices) <= 3 and indices == sorted(indices)
    assert all(0 <= i < 48 for i in indices)
    assert [f["index"] for f in result["frames"]] == indices
    assert [s["stage"] for s in result["stages"]] == ["evidence", "answer"]
    assert all(s["flops"] > 0 for s in result["stages"])
    assert result["options"] == ["moves", "stays", "spins", "vanishes"]
    with Image.open(sheet) as image:
        assert image.format == "PNG"
        assert image.width >= 320 * min(len(indices), 4)


def test_ask_uniform_direct_open_ended(tmp_path, clip, capsys):
    out = tmp_path / "ask.json"
    main(["ask", str(clip), "What happens?", "--selector", "uniform", "--frames", "2",
          "--reasoner", "direct", "--json", str(out)])
    result = json.loads(out.read_text())["result"]
    assert result["mode"] == "open" and result["evidence"] is None
    assert [f["index"] for f in result["frames"]] == [0, 47]


def test_ask_reports_bad_input(tmp_path, clip, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ask", str(tmp_path / "missing.mp4"), "q"])
    assert exc.value.code == 2 and "missing.mp4: no such file" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as exc:
        main(["ask", str(clip), "q", "-o", "only one"])
    assert exc.value.code == 2 and "2 to 8 --option" in " ".join(capsys.readouterr().err.split())


def test_chosen_option_is_read_by_the_benchmark_extractor():
    from videoespresso.cli.ask_cmd import _chosen_option

    chosen = _chosen_option("The answer is (B).", ["moves", "stays", "spins"])
    assert (chosen["letter"], chosen["text"]) == ("B", "stays") and chosen["rule"]
    assert _chosen_option("It stays where it is", ["moves", "stays"])["letter"] == "B"
    assert _chosen_option("(D)", ["moves", "stays"]) is None
    assert _chosen_option("no idea", ["a", "b", "c", "d"]) is None
