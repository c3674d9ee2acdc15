"""Contacts of an organization (name, phone, email); orders may refer to one by ``contact_id``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from connectors.base import to_e164
from hub.errors import NotFound
from hub.ids import new_id
from hub.models import Contact


class ContactCreate(BaseModel):
    """Body of ``POST /api/v1/contacts``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: EmailStr | None = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        return to_e164(value)


class ContactOut(BaseModel):
    """A contact as the API returns it."""

    id: str
    name: str
    phone: str | None
    email: str | None
    created: datetime
    updated: datetime


def contact_out(contact: Contact) -> ContactOut:
    """The public view of a contact row."""
    return ContactOut.model_validate(contact, from_attributes=True)


async def create_contact(session: AsyncSession, *, organization_id: str, data: ContactCreate) -> Contact:
    """Store a new contact."""
    contact = Contact(id=new_id("con"), organization_id=organization_id, **data.model_dump())
    session.add(contact)
    await session.flush()
    return contact


async def get_contact(session: AsyncSession, *, organization_id: str, contact_id: str) -> Contact:
    """The organization's contact, or 404 (also for another organization's id)."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.organization_id != organization_id:
        raise NotFound("Contact not found", details={"id": contact_id})
    return contact


async def list_contacts(
    session: AsyncSession, *, organization_id: str, offset: int, limit: int, search: str | None = None
) -> tuple[list[Contact], int]:
    """A page of contacts (newest first) and the total."""
    where: list[ColumnElement[bool]] = [col(Contact.organization_id) == organization_id]
    if search:
        like = f"%{search}%"
        where.append(col(Contact.name).ilike(like) | col(Contact.phone).ilike(like) | col(Contact.email).ilike(like))
    total = (await session.execute(select(func.count()).select_from(Contact).where(*where))).scalar_one()
    rows = await session.execute(
        select(Contact)
        .where(*where)
        .order_by(col(Contact.created).desc(), col(Contact.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total
