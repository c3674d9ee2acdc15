"""JSON over HTTP for the platform pull clients (Salla, Zid): one request, its decoded answer or one error.

:class:`RestJson` sends each request to ``origin + path`` through the session it is given (the pinned,
SSRF-checked ``hub.platforms.chat_client.pinned_session``), never follows redirects (credentials go to
the configured origin only), reads at most ``MAX_BODY_BYTES`` and maps the answer onto the remote
error tree of ``hub.platforms.chat_remote``:

- 429 → ``TransientRemoteError(retry_after=…)``: ``Retry-After``, else the ``X-RateLimit-Reset`` delay;
- 5xx, a network error, a timeout → ``TransientRemoteError``;
- 401/403 → ``AuthRevoked`` with the platform's own reason text;
- any other non-2xx, or a body that is not JSON → ``PermanentRemoteError``.

Budget: every answer's ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (epoch seconds) is read; when
nothing is left, the next request first awaits ``sleep`` until the reset (1 s when no reset is
stated), so the client slows down before the platform has to answer 429.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from hub import ssrf
from hub.platforms.chat_client import read_capped
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError, parse_retry_after
from hub.platforms.pull import Sleep

EMPTY_BUDGET_WAIT = 1.0  # Salla: past the budget one request per second still passes
MAX_WAIT = 60.0  # a hostile or silly reset header never parks a sync for longer


def origin_error(value: Any) -> str | None:
    """Why ``value`` is not an http(s) origin (``scheme://host[:port]``, no path or query); None if it is."""
    if not isinstance(value, str):
        return "expected an http(s) origin such as https://proxy.example:8443"
    try:
        normalized = ssrf.validate_url(value)
    except ssrf.UnsafeUrlError as exc:
        return exc.reason
    parts = urlsplit(normalized)
    if parts.path not in ("", "/") or parts.query:
        return "expected an origin only (scheme://host[:port]): the documented paths are appended to it"
    return None


def origin_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """``{"api_base_url": why}`` unless ``api_base_url`` is absent or an http(s) origin without a path."""
    value = settings.get("api_base_url")
    why = None if value is None else origin_error(value)
    return {} if why is None else {"api_base_url": why}


def origin_of(settings: Mapping[str, Any], default: str) -> str:
    """``settings["api_base_url"]`` without a trailing slash when set, else ``default``."""
    value = settings.get("api_base_url")
    return value.strip().rstrip("/") if isinstance(value, str) and value.strip() else default


def text_setting(settings: Mapping[str, Any], name: str) -> str | None:
    """A credential as a stripped non-empty string; None when absent or blank."""
    value = settings.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


class RestJson:
    """One platform origin with fixed headers; see the module docstring for the answer → error mapping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        origin: str,
        headers: Mapping[str, str],
        sleep: Sleep,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._origin = origin
        self._headers = dict(headers)
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._resume_at: float | None = None  # monotonic time before which the budget is spent

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        """The decoded JSON answer (``{}`` for an empty 2xx body); None for a 404 when ``missing_ok``."""
        await self._wait_for_budget()
        where = f"{method} {path}"
        try:
            async with self._session.request(
                method,
                self._origin + path,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status, headers = resp.status, dict(resp.headers)
                body = await read_capped(resp)
        except ssrf.UnsafeUrlError as exc:  # the host now resolves somewhere the policy forbids
            raise PermanentRemoteError(f"{where}: address refused: {exc.reason}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientRemoteError(f"{where}: {type(exc).__name__}: {exc}") from exc
        self._note_budget(headers)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if retry_after is None and status == 429:
                retry_after = self._reset_delay(headers)
            raise TransientRemoteError(f"HTTP {status} from {where}", retry_after=retry_after)
        if status in (401, 403):
            raise AuthRevoked(reason(body) or f"HTTP {status} from {where}")
        if status == 404 and missing_ok:
            return None
        if not 200 <= status < 300:
            raise PermanentRemoteError(f"HTTP {status} from {where}: {reason(body) or ''}".rstrip(": "))
        if not body.strip():
            return {}
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PermanentRemoteError(f"{where}: the answer is not JSON: {body[:200]!r}") from exc

    def _note_budget(self, headers: Mapping[str, str]) -> None:
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        if remaining is None or remaining > 0:
            self._resume_at = None
            return
        delay = self._reset_delay(headers)
        self._resume_at = time.monotonic() + (EMPTY_BUDGET_WAIT if delay is None else delay)

    def _reset_delay(self, headers: Mapping[str, str]) -> float | None:
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is None:
            return None
        delay = reset - self._clock() if reset > 1e9 else reset  # epoch seconds; a small value is a delta
        return max(0.0, min(delay, MAX_WAIT))

    async def _wait_for_budget(self) -> None:
        if self._resume_at is None:
            return
        delay, self._resume_at = self._resume_at - time.monotonic(), None
        if delay > 0:
            await self._sleep(delay)


def reason(body: bytes) -> str | None:
    """The platform's human reason in an error answer (``error.message``, ``message``, …), else its text."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return text or None
    for node in (payload.get("error"), payload) if isinstance(payload, dict) else ():
        if isinstance(node, str) and node.strip():
            return node.strip()[:300]
        if not isinstance(node, dict):
            continue
        for key in ("message", "description", "error_description"):
            value = node.get(key)
            if isinstance(value, dict):
                value = value.get("description") or value.get("message")
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
