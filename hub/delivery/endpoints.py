"""Merchant webhook endpoints: create, read, update, delete, rotate the secret, send a test event.

An endpoint's URL is checked twice: here at registration (syntax, then every resolved address
against the SSRF policy, 422 naming ``url``), and again by the sender on every new connection.
Event types are exact ``order.*`` names, ``order.*`` or ``*``. The ``whsec_`` secret is generated
here, returned with the created endpoint and afterwards only by :func:`get_secret`.

Disabling (by the owner or automatically) and deleting fail the endpoint's pending deliveries at
once, so "pending" always means "will be tried"; they can be recovered after re-enabling.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.delivery import signing
from hub.delivery.outbox import envelope
from hub.delivery.samples import SAMPLE_ORDER_ID, TEST_EVENT_TYPE, sample_order
from hub.delivery.targets import TargetPolicy, check_url
from hub.errors import Conflict, NotFound, ValidationFailed
from hub.ids import new_id
from hub.models import Delivery, OrderEvent, WebhookEndpoint
from hub.orders.transitions import SUBSCRIBABLE_EVENT_TYPES as EVENT_TYPES
from hub.ssrf import Resolver, UnsafeUrlError, validate_url

__all__ = [
    "TEST_EVENT_TYPE",
    "RotateSecret",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookFilters",
    "WebhookOut",
    "WebhookSecret",
    "WebhookUpdate",
    "create_webhook",
    "delete_webhook",
    "get_secret",
    "get_webhook",
    "list_webhooks",
    "rotate_secret",
    "send_test_event",
    "update_webhook",
    "webhook_out",
]


#: Live endpoints an organization may have (``HUB_WEBHOOK_MAX_ENDPOINTS``).
DEFAULT_MAX_ENDPOINTS = 50


def _url(value: str) -> str:
    try:
        return validate_url(value)
    except UnsafeUrlError as exc:
        raise PydanticCustomError("url", exc.reason) from exc


def _pattern(value: str) -> str:
    if value == "*" or value in EVENT_TYPES:
        return value
    if value.endswith(".*") and any(t.startswith(value[:-1]) for t in EVENT_TYPES):
        return value
    known = ", ".join((*EVENT_TYPES, "order.*", "connection.*", "*"))
    raise PydanticCustomError(
        "event_type", "unknown event type '{value}' (known: {known})", {"value": value, "known": known}
    )


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Url = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_url)]
EventTypes = Annotated[
    list[Annotated[str, AfterValidator(_pattern)]], Field(min_length=1, max_length=50), AfterValidator(_unique)
]
Source = Annotated[str, Field(pattern=r"^[a-z0-9_\-]{1,50}$")]


class WebhookFilters(BaseModel):
    """Query filters of ``GET /api/v1/webhooks``."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool | None = None


class WebhookCreate(BaseModel):
    """Body of ``POST /api/v1/webhooks``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: Url
    event_types: EventTypes
    source: Source | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class WebhookUpdate(BaseModel):
    """Body of ``PUT /api/v1/webhooks/{id}``: a merge; omitted fields keep their values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: Url | None = None
    event_types: EventTypes | None = None
    source: Source | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateSecret(BaseModel):
    """Optional body of ``POST /webhooks/{id}/rotate-secret``: bring your own ``whsec_`` secret."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = None


class WebhookOut(BaseModel):
    """An endpoint as the API shows it (never its secret)."""

    id: str
    url: str
    event_types: list[str]
    source: str | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    secret_rotation_ends_at: datetime | None
    created: datetime
    updated: datetime


class WebhookCreated(WebhookOut):
    """The created endpoint with its signing secret."""

    secret: str


class WebhookSecret(BaseModel):
    """The signing secret(s): ``previous_secret`` still signs until ``previous_secret_expires_at``."""

    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


def _overlap_end(endpoint: WebhookEndpoint, now: datetime | None = None) -> datetime | None:
    end = endpoint.previous_secret_expires_at
    return end if end is not None and end > (now or datetime.now(UTC)) else None


def webhook_out(endpoint: WebhookEndpoint) -> WebhookOut:
    """The public view of an endpoint row."""
    data = endpoint.model_dump(exclude={"secret", "previous_secret", "previous_secret_expires_at"})
    return WebhookOut.model_validate({**data, "secret_rotation_ends_at": _overlap_end(endpoint)})


def webhook_created(endpoint: WebhookEndpoint) -> WebhookCreated:
    """The creation answer: the public view plus the secret."""
    return WebhookCreated.model_validate({**webhook_out(endpoint).model_dump(), "secret": endpoint.secret})


async def _checked_url(url: str, policy: TargetPolicy, resolver: Resolver | None) -> str:
    try:
        return await check_url(url, policy=policy, resolver=resolver)
    except UnsafeUrlError as exc:
        raise ValidationFailed(details={"url": exc.reason}) from exc


async def _check_room(session: AsyncSession, organization_id: str, max_endpoints: int) -> None:
    # One order fans out to every endpoint: the cap bounds that. The organization's lock makes
    # concurrent creations count one after the other (it ends with the transaction).
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || :org, 0))"),
        {"org": organization_id},
    )
    live = col(WebhookEndpoint.organization_id) == organization_id, col(WebhookEndpoint.deleted_at).is_(None)
    count = (await session.execute(select(func.count()).select_from(WebhookEndpoint).where(*live))).scalar_one()
    if count >= max_endpoints:
        raise ValidationFailed(
            details={"url": f"this organization already has {count} webhook endpoints (at most {max_endpoints})"}
        )


async def create_webhook(
    session: AsyncSession,
    *,
    organization_id: str,
    data: WebhookCreate,
    policy: TargetPolicy,
    resolver: Resolver | None = None,
    max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
) -> WebhookEndpoint:
    """Store a new endpoint with a fresh secret (422 naming ``url`` if its addresses are refused).

    422 naming ``url`` too when the organization already has ``max_endpoints`` live endpoints.
    """
    url = await _checked_url(data.url, policy, resolver)
    await _check_room(session, organization_id, max_endpoints)
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=new_id("whk"),
        organization_id=organization_id,
        url=url,
        event_types=data.event_types,
        source=data.source,
        description=data.description,
        enabled=data.enabled,
        secret=signing.new_secret(),
        disabled_reason=None if data.enabled else "disabled by its owner",
        disabled_at=None if data.enabled else now,
        created=now,
        updated=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_webhook(session: AsyncSession, *, organization_id: str, webhook_id: str) -> WebhookEndpoint:
    """The organization's live endpoint, or 404 (also for another organization's or a deleted one)."""
    endpoint = await session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or endpoint.organization_id != organization_id or endpoint.deleted_at is not None:
        raise NotFound("Webhook not found", details={"id": webhook_id})
    return endpoint


async def list_webhooks(
    session: AsyncSession, *, organization_id: str, offset: int, limit: int, enabled: bool | None = None
) -> tuple[list[WebhookEndpoint], int]:
    """A page of live endpoints (newest first) and the total."""
    where: list[Any] = [
        col(WebhookEndpoint.organization_id) == organization_id,
        col(WebhookEndpoint.deleted_at).is_(None),
    ]
    if enabled is not None:
        where.append(col(WebhookEndpoint.enabled).is_(enabled))
    total = (await session.execute(select(func.count()).select_from(WebhookEndpoint).where(*where))).scalar_one()
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(*where)
        .order_by(col(WebhookEndpoint.created).desc(), col(WebhookEndpoint.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total


async def _fail_pending(session: AsyncSession, endpoint_id: str, reason: str) -> None:
    """Pending deliveries of a disabled/deleted endpoint fail now (in-flight ones finish on their own)."""
    await session.execute(
        update(Delivery)
        .where(
            col(Delivery.endpoint_id) == endpoint_id,
            col(Delivery.status) == "pending",
            col(Delivery.leased_until).is_(None) | (col(Delivery.leased_until) <= func.now()),
        )
        .values(status="failed", next_attempt_at=None, completed_at=func.now(), updated=func.now(), last_error=reason)
    )


async def update_webhook(
    session: AsyncSession,
    *,
    organization_id: str,
    webhook_id: str,
    data: WebhookUpdate,
    policy: TargetPolicy,
    resolver: Resolver | None = None,
) -> WebhookEndpoint:
    """Merge ``data`` into the endpoint. ``enabled: true`` also clears the disabled state and its reason."""
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    fields = data.model_fields_set
    for name in ("event_types", "source", "description"):
        if name in fields:
            if name == "event_types" and data.event_types is None:
                raise ValidationFailed(details={"event_types": "may not be null"})
            setattr(endpoint, name, getattr(data, name))
    if "url" in fields:
        if data.url is None:
            raise ValidationFailed(details={"url": "may not be null"})
        endpoint.url = await _checked_url(data.url, policy, resolver)
    now = datetime.now(UTC)
    if data.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
    elif data.enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason, endpoint.disabled_at = "disabled by its owner", now
        await _fail_pending(session, endpoint.id, "endpoint disabled: disabled by its owner")
    endpoint.updated = now
    session.add(endpoint)
    await session.flush()
    return endpoint


async def delete_webhook(session: AsyncSession, *, organization_id: str, webhook_id: str) -> None:
    """Soft-delete the endpoint (its delivery history stays readable by id) and fail what is pending."""
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    endpoint.deleted_at = endpoint.updated = datetime.now(UTC)
    session.add(endpoint)
    await _fail_pending(session, endpoint.id, "endpoint deleted")
    await session.flush()


async def get_secret(session: AsyncSession, *, organization_id: str, webhook_id: str) -> WebhookSecret:
    """The current secret, and the previous one while the rotation overlap lasts."""
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    end = _overlap_end(endpoint)
    return WebhookSecret(
        secret=endpoint.secret,
        previous_secret=endpoint.previous_secret if end is not None else None,
        previous_secret_expires_at=end,
    )


async def rotate_secret(
    session: AsyncSession, *, organization_id: str, webhook_id: str, overlap_seconds: int, new_secret: str | None = None
) -> WebhookSecret:
    """Make a new secret current; the old one keeps signing beside it for ``overlap_seconds``.

    Only one previous secret is kept: rotating again during an overlap retires the oldest at once.
    """
    if new_secret is not None:
        try:
            signing.decode_secret(new_secret)
        except signing.InvalidSecretError as exc:
            raise ValidationFailed(details={"secret": str(exc)}) from exc
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    now = datetime.now(UTC)
    if overlap_seconds > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret = endpoint.previous_secret_expires_at = None
    endpoint.secret = new_secret or signing.new_secret()
    endpoint.updated = now
    session.add(endpoint)
    await session.flush()
    return await get_secret(session, organization_id=organization_id, webhook_id=webhook_id)


async def send_test_event(session: AsyncSession, *, organization_id: str, webhook_id: str) -> Delivery:
    """Write a ``webhook.test`` event and a delivery to this endpoint only (the caller wakes the worker).

    It travels the real path — outbox row, claim, signature, attempt ledger — whatever the endpoint's
    event types, so a merchant sees exactly what a real delivery would do.
    """
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    if not endpoint.enabled:
        raise Conflict("Webhook is disabled; enable it before sending a test event", details={"enabled": False})
    now = datetime.now(UTC)
    event_id = new_id("evt")
    session.add(
        OrderEvent(
            id=event_id,
            organization_id=organization_id,
            order_id=SAMPLE_ORDER_ID,
            type=TEST_EVENT_TYPE,
            source="test",
            payload=envelope(event_id, TEST_EVENT_TYPE, now, sample_order(organization_id, now)),
            created=now,
        )
    )
    await session.flush()  # the event row must exist before the delivery that refers to it
    delivery = Delivery(
        id=new_id("dlv"),
        organization_id=organization_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=TEST_EVENT_TYPE,
        next_attempt_at=now,
        created=now,
        updated=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery
