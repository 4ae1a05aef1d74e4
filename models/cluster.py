"""A cluster and the CDAs assigned to it."""

from datetime import datetime

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class Cluster(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    sector: str | None = Field(default=None, max_length=200)
    district: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    language: str = Field(default="en", max_length=8)
    timezone: str = Field(default="Asia/Kolkata", max_length=64)
    invite_code: str = Field(max_length=32, unique=True, index=True)
    # The seed's selection criteria, scored 1-5 by the implementing agency; unknown until scored.
    importance: int | None = None
    promotability: int | None = None
    viability: int | None = None
    sustainability: int | None = None
    # Optional note per criterion: {"importance": "largest brass cluster in UP", ...}.
    score_notes: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = timestamp_field()


class CdaAssignment(SQLModel, table=True):
    __tablename__ = "cda_assignment"
    __table_args__ = (UniqueConstraint("telegram_user_id", "cluster_id"),)

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = telegram_id_field(index=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE")
    created_at: datetime = timestamp_field()
