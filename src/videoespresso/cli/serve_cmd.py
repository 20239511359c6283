"""``videoespresso serve``: an OpenAI-compatible HTTP server for one model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import err_console

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_command(
    model: str = typer.Option(..., "--model", "-m", help="Spec of a chat or vision-language model, e.g. tiny:qwen2-vl."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0 = any free port)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name clients send; defaults to the spec."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite response cache for deterministic requests."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Concurrent requests batched into one call."),
    max_tokens_limit: int = typer.Option(4096, "--max-tokens-limit", min=1, help="Refuse requests asking for more max_tokens."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=0.001, help="Seconds of generation per request; then the reply so far is returned."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.001, help="Largest request body (data URLs included), MB; larger gets 413."),
    max_concurrent: int = typer.Option(64, "--max-concurrent", min=1, help="Requests in flight (queued or generating); more get 429."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require this bearer token on every endpoint (comma-separate several); default: $VIDEOESPRESSO_API_KEY."),
) -> None:
    """Serve a model through the OpenAI chat-completions API (/v1/chat/completions, /v1/models).

    Example: videoespresso serve --model tiny:qwen2-vl --port 8000 --name qwen2-vl
    """
    from ..errors import ConfigError, SpecError
    from ..models.registry import load_model, parse_spec

    try:
        from ..serve.core import ServerLimits
        from ..serve.openai_server import bind_socket, run_server
    except ImportError as exc:
        raise ConfigError(
            f"serve needs FastAPI and uvicorn (pip install 'videoespresso[serve]'): {exc}"
        ) from None

    from ..serve.auth import api_keys

    parse_spec(model)
    keys = api_keys(api_key)
    # Bind before loading: a taken port fails at once instead of after seconds of model loading, and
    # clients that connect early wait in the backlog.
    sock = bind_socket(host, port)
    try:
        backend = load_model(model, cache=cache)
        if not hasattr(backend, "generate"):
            raise SpecError(f"{model}: not a chat or vision-language model, so it cannot be served")
    except BaseException:
        sock.close()
        raise
    served = name or model
    if host not in _LOOPBACK and not keys:
        err_console.print(
            f"[yellow]warning:[/] listening on {host}, beyond this machine; the server has no authentication"
            " (--api-key)"
        )
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"serving {model} as {served!r} at http://{shown}:{bound_port}/v1 (Ctrl-C stops)")
    try:
        limits = ServerLimits(max_body_bytes=int(max_body_mb * 2**20), max_concurrent=max_concurrent,
                              max_tokens=max_tokens_limit, request_timeout_s=request_timeout)
        run_server(backend, name=served, sock=sock, max_batch=max_batch, api_keys=keys, limits=limits)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM, after the graceful shutdown: stopping is the normal way out.
        pass
    err_console.print("server stopped")
