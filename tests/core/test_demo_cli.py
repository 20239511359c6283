import json

from videoespresso.cli import main


def test_demo_runs_end_to_end_offline(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "random-weight" in out
    assert "captions" in out and "answer:" in out
    assert (tmp_path / "sample.mp4").stat().st_size > 0
    assert (tmp_path / "chosen-frames.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((tmp_path / "answer.json").read_text())
    frames = result["selection"]["frames"]
    assert 1 <= len(frames) and [f["index"] for f in frames] == sorted(f["index"] for f in frames)
    assert [s["stage"] for s in result["result"]["stages"]] == ["evidence", "answer"]
