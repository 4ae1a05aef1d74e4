"""Where each user is in a multi-step chat flow, so a restart resumes at the same step."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class DialogState(SQLModel, table=True):
    __tablename__ = "dialog_state"

    telegram_user_id: int = telegram_id_field(primary_key=True)
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    # Answers given so far in this flow; replaced as a whole on every change so the ORM sees it.
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = timestamp_field()


class UserPreference(SQLModel, table=True):
    """The interface language of someone who is not (yet) a stakeholder, such as a CDA."""

    __tablename__ = "user_preference"

    telegram_user_id: int = telegram_id_field(primary_key=True)
    language: str = Field(max_length=8)
    updated_at: datetime = timestamp_field()
