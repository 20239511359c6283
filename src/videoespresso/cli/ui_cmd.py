"""``videoespresso ui``: VideoQA-SC behind the OpenAI API, plus the web UI, in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import ConfigOption, ProfileOption, effective_config, err_console, note_random_weights

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("ui")
def ui_command(
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Videos may be read only under this folder (and picked in the UI)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="A `build` output folder to browse."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="A predictions file (from `eval`) to browse."),
    bench: Optional[Path] = typer.Option(None, "--bench", help="The bench file the predictions answer."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0 = any free port)."),
    name: str = typer.Option("videoqa-sc", "--name", help="Model name clients send."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require this bearer token on every endpoint (comma-separate several); default: $VIDEOESPRESSO_API_KEY."),
    selector: str = typer.Option("caption-llm", "--selector", "-s", help="uniform, embedding or caption-llm."),
    reasoner: str = typer.Option("two-stage", "--reasoner", "-r", help="two-stage or direct."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Fetch http(s) video URLs (size and time limited)."),
    upload_dir: Optional[Path] = typer.Option(None, "--upload-dir", help="Keep uploads here (default: a temporary folder removed at exit)."),
    max_uploads: int = typer.Option(200, "--max-uploads", min=1, help="Uploads kept; past this the oldest are deleted."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001, help="Largest upload or remote video, MB."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.001, help="Largest request body (data URLs included), MB."),
    max_frames: int = typer.Option(64, "--max-frames", min=1, help="Most image_url parts (frames) per request."),
    max_tokens: int = typer.Option(1024, "--max-tokens-limit", min=1, help="Refuse requests asking for more max_tokens."),
    max_concurrent: int = typer.Option(8, "--max-concurrent", min=1, help="Requests in flight; more get 429."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=0.001, help="Seconds of generation per request; then the answer so far is returned."),
    no_ui: bool = typer.Option(False, "--no-ui", help="Serve the API only."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Serve VideoQA-SC (OpenAI chat completions with video_url parts) and the web UI.

    Example: videoespresso ui --profile offline --video-root videos/ --dataset build/ --predictions runs/sc.jsonl --bench build/test.json --port 8000
    """
    from ..errors import ConfigError

    try:
        from ..serve.auth import api_keys
        from ..serve.media import MediaPolicy, remove_upload_dir
        from ..serve.core import ServerLimits, bind_socket, run_foreground
        from ..serve.videoqa import VideoQA, create_videoqa_app
        from ..ui import UIConfig
    except ImportError as exc:
        raise ConfigError(f"ui needs FastAPI and uvicorn (pip install 'videoespresso[serve]'): {exc}") from None

    for path, flag in ((dataset, "--dataset"), (video_root, "--video-root")):
        if path is not None and not path.is_dir():
            raise ConfigError(f"{flag} {path} is not a folder")
    for path, flag in ((predictions, "--predictions"), (bench, "--bench")):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path} does not exist")
    keys = api_keys(api_key)
    cfg = effective_config(profile, config, None)
    # Bound first: a taken port fails before a temporary upload folder exists.
    sock = bind_socket(host, port)
    policy = None
    try:
        policy = MediaPolicy(
            video_root=video_root, upload_dir=upload_dir, allow_remote=allow_remote,
            max_upload_bytes=int(max_upload_mb * 2**20), max_remote_bytes=int(max_upload_mb * 2**20),
            max_images=max_frames, max_uploads=max_uploads,
        )
        roles = {"reasoner": cfg.models.reasoner}
        if selector in ("embedding", "caption-llm"):
            roles["selector captioner"] = cfg.models.selector_vlm
        if selector == "caption-llm":
            roles["selector LLM"] = cfg.models.selector_llm
        note_random_weights(roles)
        videoqa = VideoQA.from_config(cfg, selector=selector, reasoner=reasoner)
        ui = None if no_ui else UIConfig(dataset=dataset, predictions=predictions, bench=bench)
        application = create_videoqa_app(
            videoqa, policy=policy, name=name, api_keys=keys, ui=ui,
            limits=ServerLimits(max_body_bytes=int(max_body_mb * 2**20), max_tokens=max_tokens,
                                max_concurrent=max_concurrent, request_timeout_s=request_timeout),
        )
    except BaseException:
        sock.close()
        if policy is not None and upload_dir is None:
            remove_upload_dir(policy)
        raise
    if host not in _LOOPBACK:
        warning = "anyone who can reach it needs the API key" if keys else "and there is no API key (--api-key)"
        err_console.print(f"[yellow]warning:[/] listening on {host}, beyond this machine; {warning}")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"serving {name!r} at http://{shown}:{bound}/v1" + ("" if no_ui else f", UI at http://{shown}:{bound}/ui")
                      + (" (API key required)" if keys else "") + " (Ctrl-C stops)")
    try:
        run_foreground(application, sock, log_level="warning")
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM, after the graceful shutdown
    finally:
        if upload_dir is None:
            remove_upload_dir(policy)
    err_console.print("server stopped")
