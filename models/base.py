"""Column helpers shared by the tables."""

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def timestamp_field(**kwargs):
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kwargs)


def telegram_id_field(**kwargs):
    # Telegram user and chat ids exceed 32 bits.
    return Field(sa_type=BigInteger, **kwargs)
