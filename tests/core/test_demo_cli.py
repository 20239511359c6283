import json

from videoespresso.cli import main


def test_demo_runs_end_to_end_offline(tmp_path, capsys):
    # the default offline profile, with shorter replies so the real SmolLM2 answers in seconds
    config = tmp_path / "short.yaml"
    config.write_text("generation:\n  max_new_tokens: 24\ncurate:\n  max_text_chars: 60\n  max_new_tokens: 110\n")
    main(["demo", "--out", str(tmp_path), "--config", str(config)])
    out = capsys.readouterr().out
    assert "random-weight" in out
    # the build's text stages ran on the real model and printed what it wrote (not checked: content)
    assert "text stages of build (smollm2, real model)" in out
    stage_lines = [line for line in out.splitlines() if line.lstrip().startswith(("question:", "judge smollm2:", "evidence:"))]
    assert len(stage_lines) >= 2, out
    assert "captions" in out and "answer:" in out
    assert (tmp_path / "sample.mp4").stat().st_size > 0
    assert (tmp_path / "chosen-frames.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((tmp_path / "answer.json").read_text())
    frames = result["selection"]["frames"]
    assert 1 <= len(frames) and [f["index"] for f in frames] == sorted(f["index"] for f in frames)
    assert [s["stage"] for s in result["result"]["stages"]] == ["evidence", "answer"]
