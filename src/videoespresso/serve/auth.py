"""API keys: with one or more keys set, every endpoint wants ``Authorization: Bearer <key>``.

Browsers cannot add a header to an ``<img>`` request, so the web UI's login form (``/ui/login``)
sets an HttpOnly cookie holding the key; the middleware accepts either. Keys are compared in
constant time and never logged: a refused request logs only its path.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

ENV_VAR = "VIDEOESPRESSO_API_KEY"
COOKIE = "ve_api_key"
#: Reachable without a key, so a browser can log in.
OPEN_PATHS = ("/ui/login",)


def api_keys(given: str | None) -> list[str]:
    """Keys from ``--api-key`` or, failing that, the environment (comma-separated: several)."""
    raw = given if given else os.environ.get(ENV_VAR, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def key_matches(candidate: str | None, keys: Iterable[str]) -> bool:
    if not candidate:
        return False
    given = candidate.encode()
    # Compare against every key (no early exit), so timing says nothing about which matched.
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def _request_key(scope: dict[str, Any]) -> str | None:
    headers = dict(scope.get("headers") or [])
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    cookie_header = headers.get(b"cookie", b"").decode("latin-1")
    if cookie_header:
        cookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except Exception:  # noqa: BLE001 -- a malformed cookie header is simply no key
            return None
        if COOKIE in cookie:
            return cookie[COOKIE].value
    return None


class ApiKeyMiddleware:
    """Pure ASGI middleware (no body buffering) that refuses requests without a valid key."""

    def __init__(self, app: Callable[..., Awaitable[None]], keys: list[str]) -> None:
        self.app = app
        self.keys = list(keys)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.keys or scope.get("path", "") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if key_matches(_request_key(scope), self.keys):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        log.info("refused a request without a valid API key: %s %s", scope.get("method"), path)
        if path.startswith("/ui") and scope.get("method") == "GET":
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/ui/login"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"error": {
            "message": "a valid API key is required: send 'Authorization: Bearer <key>'",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
        }}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]})
        await send({"type": "http.response.body", "body": body})
