"""Run manifests: the settings a resumable output file was produced with, kept beside it.

``eval``, ``judge`` and ``select`` append to their output and resume from it. A resume is only
honest when the lines already there were produced the same way, so each output ``X`` has a
manifest ``X.manifest.json`` holding the settings that decide its contents (model spec and
options, generation settings, frame source, template, mode, protocol, the benchmark file's hash).
A run with other settings is refused with a message naming every difference, unless the caller
starts over (``--overwrite``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from .jsonl import write_json_atomic

FORMAT = "videoespresso.run-manifest"
VERSION = 1


def manifest_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip makes tuples lists and keys strings, as they will read back from disk.
    return json.loads(json.dumps(dict(settings), sort_keys=True, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs (missing keys included)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            out.append(f"{key}: {_short(old.get(key, '<unset>'))} -> {_short(new.get(key, '<unset>'))}")
    return out


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    path = manifest_path(out)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"run manifest {path} is not valid JSON ({exc}); remove it or pass --overwrite") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{path} is not a videoespresso run manifest; remove it or pass --overwrite")
    return data


def check_resume(
    out: str | Path,
    kind: str,
    settings: Mapping[str, Any],
    *,
    has_output: bool,
    overwrite: bool = False,
    legacy_settings: Mapping[str, Any] | None = None,
) -> str:
    """Refuse to resume ``out`` with other settings; write its manifest. Returns what happened.

    ``has_output`` says whether ``out`` already holds results. An output without a manifest (an
    older version of videoespresso wrote it) is accepted only when ``legacy_settings`` (the
    settings read back from its lines) agree with ``settings``. With ``overwrite`` the caller
    has already removed the old output and a new manifest is written. The result is ``"new"``,
    ``"resumed"`` or ``"overwritten"``.
    """
    wanted = _normalise(settings)
    path = manifest_path(out)
    if overwrite:
        write_json_atomic(path, {"format": FORMAT, "version": VERSION, "kind": kind, "settings": wanted})
        return "overwritten"
    old = read_manifest(out)
    if old is not None:
        if old.get("kind") != kind:
            raise ConfigError(f"{out} was written by '{old.get('kind')}', not '{kind}'; choose another output or pass --overwrite")
        diff = differences(old["settings"], wanted)
        if diff:
            raise ConfigError(
                f"{out} was produced with other settings ({'; '.join(diff)}); "
                "use another output path, or --overwrite to start over"
            )
        return "resumed" if has_output else "new"
    if has_output:
        if legacy_settings is None:
            raise ConfigError(f"{out} already holds results but has no manifest ({path.name}); pass --overwrite to start over")
        recorded = _normalise(legacy_settings)
        diff = differences({k: recorded[k] for k in recorded}, {k: wanted.get(k, "<unset>") for k in recorded})
        if diff:
            raise ConfigError(
                f"{out} was produced with other settings ({'; '.join(diff)}); "
                "use another output path, or --overwrite to start over"
            )
    write_json_atomic(path, {"format": FORMAT, "version": VERSION, "kind": kind, "settings": wanted})
    return "resumed" if has_output else "new"
