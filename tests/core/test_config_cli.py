import subprocess
import sys

import pytest
import yaml

from videoespresso.cli import main
from videoespresso.config import load_config, profile_names
from videoespresso.errors import ConfigError
from videoespresso.models.registry import parse_spec
from videoespresso.errors import SpecError


def test_profiles_validate():
    assert {"offline", "tiny", "paper"} <= set(profile_names())
    for name in profile_names():
        cfg = load_config(name)
        assert cfg.profile == name
        assert cfg.generation.greedy


def test_user_file_merges_over_profile_and_dumps(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("curate:\n  redundancy_tau: 0.8\nmodels:\n  llm: openai:x@http://127.0.0.1:9/v1\n")
    cfg = load_config("offline", path)
    assert cfg.curate.redundancy_tau == 0.8
    assert cfg.models.llm == "openai:x@http://127.0.0.1:9/v1"
    assert cfg.models.captioner == "tiny:qwen2-vl"
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert load_config(None, again) == cfg


def test_bad_config_names_the_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("curate:\n  redundancy_tau: 7\n")
    with pytest.raises(ConfigError, match="curate.redundancy_tau"):
        load_config("offline", path)
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("nope")


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("hf:Qwen/Qwen2-VL-2B-Instruct", ("hf", "Qwen/Qwen2-VL-2B-Instruct", None)),
        ("openai:gpt-4o", ("openai", "gpt-4o", None)),
        ("openai:my-model@http://localhost:8000/v1/", ("openai", "my-model", "http://localhost:8000/v1")),
        ("st:BAAI/bge-m3", ("st", "BAAI/bge-m3", None)),
        ("minilm", ("minilm", "all-MiniLM-L6-v2", None)),
        ("tiny:qwen2-vl", ("tiny", "qwen2-vl", None)),
    ],
)
def test_parse_spec(spec, expected):
    parsed = parse_spec(spec)
    assert (parsed.scheme, parsed.name, parsed.base_url) == expected


@pytest.mark.parametrize("spec", ["", "gpt-4o", "foo:bar", "hf:", "openai:m@ftp://x"])
def test_bad_specs_raise_spec_error(spec):
    with pytest.raises(SpecError):
        parse_spec(spec)


def test_cli_version_help_and_config(capsys, tmp_path):
    main(["--version"])
    assert "videoespresso" in capsys.readouterr().out
    out = tmp_path / "eff.yaml"
    main(["config", "--profile", "paper", "--out", str(out)])
    assert yaml.safe_load(out.read_text())["models"]["embedder"] == "st:BAAI/bge-m3"


def test_cli_user_error_is_one_line_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "videoespresso", "config", "--profile", "nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown profile" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["nosuch"], ["eval"], ["config", "--bogus"]])
def test_cli_usage_errors_exit_2_without_traceback(argv):
    proc = subprocess.run(
        [sys.executable, "-m", "videoespresso", *argv], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_offline_profile_is_tiny_with_smollm2_for_every_text_role():
    offline, tiny = load_config("offline"), load_config("tiny")
    text_roles = {"llm": "smollm2", "judges": ["smollm2"], "selector_llm": "smollm2", "judge": "smollm2"}
    for role, spec in text_roles.items():
        assert getattr(offline.models, role) == spec
        assert getattr(tiny.models, role) != spec
    for role in ("captioner", "reasoner", "selector_vlm", "grounder", "scorer", "embedder"):
        assert getattr(offline.models, role) == getattr(tiny.models, role)
    assert offline.sampling == tiny.sampling


def test_profile_extends_merges_and_refuses_cycles_and_unknown_parents():
    from videoespresso.config import resolve_profiles

    out = resolve_profiles({"a": {"models": {"llm": "x", "captioner": "c"}, "curate": {"group_size": 3}},
                            "b": {"extends": "a", "models": {"llm": "y"}}})
    assert out["b"] == {"models": {"llm": "y", "captioner": "c"}, "curate": {"group_size": 3}}
    with pytest.raises(ConfigError, match="extends itself"):
        resolve_profiles({"a": {"extends": "b"}, "b": {"extends": "a"}})
    with pytest.raises(ConfigError, match="unknown profile 'z'"):
        resolve_profiles({"a": {"extends": "z"}})


def _config_cli(path, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``videoespresso config -c path`` in a child, optionally under an address-space limit."""
    import resource

    def limit() -> None:
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "videoespresso", "config", "-c", str(path)], capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("curate:\n  batch_size: 2\n   bad: [1\n")
    proc = _config_cli(path)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: config file {path}:3:7: mapping values are not allowed here"


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Nine levels of nine aliases: 9**9 strings once expanded (the validation error's message
    alone used to take the machine's memory)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    proc = _config_cli(path, limit_bytes=2 << 30)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip() == f"error: config file {path}: more than 100000 values once its aliases are expanded (an alias bomb?)"


@pytest.mark.parametrize("text, problem", [
    ("x: &x [*x]\n", ":1:4: an alias that contains itself"),
    ("# padding\n" * 120_000, ": 1200000 bytes, more than the 1048576 a config may have"),
    ("a: [" * 5000, ": nested too deeply"),
])
def test_yaml_recursion_size_and_depth_are_bounded(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(None, path)
    assert str(info.value) == f"config file {path}{problem}"


def test_config_that_is_a_fifo_says_so(tmp_path):
    import os

    path = tmp_path / "c.yaml"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="not a regular file but a named pipe"):
        load_config(None, path)


def test_the_eval_defaults_table_in_docs_cli_matches_the_profiles():
    """docs/cli.md said 448 px and 256 tokens; the offline profile gives 224 and 96."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    rows = {"size": ("sampling", "max_side"), "decoding": ("generation", "max_new_tokens")}
    checked = 0
    for row, (section, key) in rows.items():
        line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
        ours = line.split("|")[2]
        for value, names in re.findall(r"(\d+) \(((?:`\w+`(?:, )?)+)\)", ours):
            for name in re.findall(r"`(\w+)`", names):
                assert getattr(getattr(load_config(name), section), key) == int(value), (row, name)
                checked += 1
    assert checked == 6


def test_profile_help_names_every_profile_for_what_it_is():
    """The help said 'offline' meant tiny models; offline's text roles are SmolLM2, tiny is all-random."""
    from videoespresso.cli._common import ProfileOption

    text = ProfileOption.help
    assert all(f"'{name}'" in text for name in profile_names())
    assert load_config("offline").models.llm == "smollm2" and "SmolLM2" in text
    assert all(spec.startswith("tiny:") for spec in (load_config("tiny").models.llm, load_config("tiny").models.reasoner))
