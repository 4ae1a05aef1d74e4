"""A registered person and the clusters they belong to."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class Role(StrEnum):
    MSME_OWNER = "msme_owner"
    LARGE_ENTERPRISE = "large_enterprise"
    SUPPORT_INSTITUTION = "support_institution"
    BANK = "bank"
    LOCAL_GOVERNMENT = "local_government"
    ACADEMIA = "academia"
    SERVICE_PROVIDER = "service_provider"
    INDUSTRY_ASSOCIATION = "industry_association"
    OTHER = "other"


# Roles that run an enterprise, so an enterprise name and a Udyam size class make sense.
ENTERPRISE_ROLES = frozenset({Role.MSME_OWNER, Role.LARGE_ENTERPRISE, Role.SERVICE_PROVIDER})


class SizeClass(StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    NOT_ENTERPRISE = "not_enterprise"


class StakeholderStatus(StrEnum):
    ACTIVE = "active"
    UNREACHABLE = "unreachable"
    LEFT = "left"


class Stakeholder(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = telegram_id_field(unique=True, index=True)
    chat_id: int = telegram_id_field()
    name: str = Field(max_length=100)
    role: str = Field(max_length=32)
    enterprise: str | None = Field(default=None, max_length=100)
    product: str | None = Field(default=None, max_length=100)
    size_class: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)
    language: str = Field(max_length=8)
    consent_at: datetime = timestamp_field()
    notice_version: str = Field(max_length=16)
    status: str = Field(default=StakeholderStatus.ACTIVE, max_length=16)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("stakeholder_id", "cluster_id"),)

    id: int | None = Field(default=None, primary_key=True)
    stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    joined_at: datetime = timestamp_field()
