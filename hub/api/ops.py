"""``/ops``: the on-call page, its login, its JSON summary and its retry buttons.

Access needs the ops token (``HUB_OPS_TOKEN``; ``hub up`` makes one and prints the link): as
``Authorization: Bearer <token>``, as ``?token=`` (exchanged at once for a cookie and a clean URL),
or as the cookie set by the login form at ``/ops/login``. The cookie holds an expiry and an HMAC
keyed by the token, not the token, so any API process can check it and changing the token logs
everyone out. Logging out revokes that cookie for good (a Redis entry until it would expire; with
Redis away cookies are refused, the Bearer token still works), and failed logins per client address
are limited (``HUB_OPS_LOGIN_LIMIT``; 429 with ``Retry-After`` beyond). Without a configured token
nothing gets in: the API answers 401, the page sends you to the login form, which says how to configure one.

Cookie-authenticated POSTs must also carry ``X-Ops-Request: 1`` (the page's script sends it), on
top of ``SameSite=Strict``, so another site cannot make an engineer's browser press a button.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from importlib import resources

from aiohttp import web

from hub.api._router import Router
from hub.errors import RateLimited, Unauthorized
from hub.keys import LIMITER, PG_POOL, REDIS, SETTINGS
from hub.ops import actions as svc
from hub.ops.actions import Retried
from hub.web.responses import ok

router = Router("ops")

COOKIE = "hub_ops"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-Ops-Request"
REVOKED_KEY = "hub:ops:revoked:{session}"
_ASSETS = {"ops.js": "text/javascript", "ops.css": "text/css"}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return resources.files("hub").joinpath("static", name).read_bytes()


def _secret(request: web.Request) -> bytes | None:
    token = request.app[SETTINGS].ops_token
    return None if token is None or not token.get_secret_value() else token.get_secret_value().encode()


def _same(given: str, secret: bytes) -> bool:
    return hmac.compare_digest(given.encode(), secret)


def _session_value(secret: bytes, expires: int) -> str:
    mac = hmac.new(secret, f"orderhub-ops-session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def _valid_session(secret: bytes, value: str) -> bool:
    expires, _, _mac = value.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(value.encode(), _session_value(secret, int(expires)).encode())


async def _revoked(request: web.Request, session: str) -> bool:
    try:
        return bool(await request.app[REDIS].exists(REVOKED_KEY.format(session=session)))
    except Exception:  # cannot tell: a logged-out cookie must not get back in
        return True


async def _credential(request: web.Request, secret: bytes) -> str | None:
    """How the request proved it holds the token: ``bearer``, ``query``, ``cookie`` or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip() and _same(value.strip(), secret):
        return "bearer"
    if "token" in request.query and _same(request.query["token"], secret):
        return "query"
    cookie = request.cookies.get(COOKIE)
    if cookie and _valid_session(secret, cookie) and not await _revoked(request, cookie):
        return "cookie"
    return None


async def require_ops(request: web.Request) -> None:
    """401 in DESIGN's error shape unless the request holds the ops token (see the module doc)."""
    secret = _secret(request)
    if secret is None:
        raise Unauthorized("Ops access is not configured", details={"ops_token": "set HUB_OPS_TOKEN"})
    how = await _credential(request, secret)
    if how is None:
        raise Unauthorized(
            "Missing or invalid ops token",
            details={"authorization": "send 'Authorization: Bearer <ops token>' or log in at /ops/login"},
        )
    if how == "cookie" and request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
        raise Unauthorized("Missing X-Ops-Request header", details={CSRF_HEADER.lower(): "send '1'"})


def _with_session(response: web.Response, request: web.Request, secret: bytes) -> web.Response:
    expires = int(time.time()) + SESSION_SECONDS
    public = request.app[SETTINGS].public_url or ""
    response.set_cookie(
        COOKIE,
        _session_value(secret, expires),
        max_age=SESSION_SECONDS,
        path="/ops",
        httponly=True,
        samesite="Strict",
        secure=request.secure or public.startswith("https://"),
    )
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# ---- the page ---------------------------------------------------------------------------------------


@router.route("GET", "/ops", summary="The ops page (HTML)", auth="ops", content_type="text/html", extra_statuses=(303,))
async def ops_page(request: web.Request) -> web.Response:
    secret = _secret(request)
    how = await _credential(request, secret) if secret is not None else None
    if how is None:
        return _see_other("/ops/login" + ("?failed=1" if "token" in request.query else ""))
    if how == "query" and secret is not None:
        # Trade the token in the URL for a cookie so it leaves the address bar and browser history.
        return _with_session(_see_other("/ops"), request, secret)
    return web.Response(body=_asset("ops.html"), content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)


@router.route(
    "GET",
    "/ops/static/{name}",
    summary="The ops page's script and stylesheet",
    auth=None,
    content_type="text/javascript",
    also_content_types=("text/css",),
)
async def ops_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.Response(body=_asset(name), content_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})


def _login_page(message: str | None, *, status: int = 200) -> web.Response:
    note = f'<p class="login-error" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Orderhub ops · sign in</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/ops/static/ops.css"></head>
<body class="login"><main class="login-box"><h1>Orderhub ops</h1>{note}
<form method="post" action="/ops/login"><label for="token">Ops token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button></form>
<p class="hint">The token is <code>HUB_OPS_TOKEN</code>; <code>hub up</code> prints a ready link.</p>
</main></body></html>"""
    return web.Response(text=body, status=status, content_type="text/html", headers=_PAGE_HEADERS)


@router.route("GET", "/ops/login", summary="The ops login form", auth=None, content_type="text/html")
async def ops_login_form(request: web.Request) -> web.Response:
    if _secret(request) is None:
        return _login_page("Ops access is not configured on this hub: set HUB_OPS_TOKEN.")
    return _login_page("That link's token is not valid." if "failed" in request.query else None)


@router.route(
    "POST",
    "/ops/login",
    summary="Sign in with the ops token",
    auth=None,
    content_type="text/html",
    status=303,
    extra_statuses=(401, 429),
)
async def ops_login(request: web.Request) -> web.Response:
    secret = _secret(request)
    if secret is None:
        return _login_page("Ops access is not configured on this hub: set HUB_OPS_TOKEN.", status=401)
    limiter, client = request.app[LIMITER], request.remote or "unknown"
    try:
        await limiter.refuse_if_spent(limiter.ops_login, "ops-login", client)  # even the right token waits
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not _same(token.strip(), secret):
            await limiter.check(limiter.ops_login, "ops-login", client)  # counts the failure; 429 once over
            return _login_page("Wrong token.", status=401)
    except RateLimited as exc:  # a login form answers with a page, like its 401
        page = _login_page(f"Too many failed attempts: try again in {exc.retry_after} s.", status=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    return _with_session(_see_other("/ops"), request, secret)


@router.route("POST", "/ops/logout", summary="Sign out of the ops page", auth=None, status=303)
async def ops_logout(request: web.Request) -> web.Response:
    response = _see_other("/ops/login")
    response.del_cookie(COOKIE, path="/ops")
    cookie = request.cookies.get(COOKIE)
    secret = _secret(request)
    if cookie and secret is not None and _valid_session(secret, cookie):
        # A copy of the cookie (another tab, a stolen one) must stop working too, until it would expire.
        ttl = max(1, int(cookie.partition(".")[0]) - int(time.time()))
        await request.app[REDIS].set(REVOKED_KEY.format(session=cookie), b"1", ex=ttl)
    return response


# ---- the API the page calls --------------------------------------------------------------------------


@router.route("GET", "/ops/api/summary", summary="Everything the ops page shows", auth="ops", response=svc.Summary)
async def ops_summary(request: web.Request) -> web.Response:
    await require_ops(request)
    return ok(await svc.summary(request.app[PG_POOL], request.app[REDIS]))


def _retried(result: Retried, what: str) -> web.Response:
    body = {"id": result.id, "previous_status": result.previous_status, "enqueued": result.enqueued}
    return ok(body, message=f"{what} queued for retry.")


@router.route(
    "POST", "/ops/api/deliveries/{id}/retry", summary="Retry a delivery now", auth="ops", extra_statuses=(404, 409)
)
async def ops_retry_delivery(request: web.Request) -> web.Response:
    await require_ops(request)
    result = await svc.retry_delivery(request.app[PG_POOL], request.app[REDIS], delivery_id=request.match_info["id"])
    return _retried(result, "Delivery")


@router.route(
    "POST",
    "/ops/api/inbound-events/{id}/retry",
    summary="Process an inbound event again",
    auth="ops",
    extra_statuses=(404,),
)
async def ops_retry_inbound_event(request: web.Request) -> web.Response:
    await require_ops(request)
    result = await svc.retry_inbound_event(request.app[PG_POOL], request.app[REDIS], event_id=request.match_info["id"])
    return _retried(result, "Inbound event")
