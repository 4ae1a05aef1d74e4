"""Settings from the environment and ``.env`` (the variables are fixed by SPEC.md)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.languages import LANGUAGES


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: str = ""
    database_url: str = "sqlite+aiosqlite:///cluster_bot.db"
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    cda_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    default_language: str = "en"
    timezone: str = "Asia/Kolkata"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    port: int = 8080
    # Messages per second the outbox sends; Telegram allows about 30 overall.
    outbox_rate: float = Field(default=28.0, gt=0, le=30)

    @field_validator("cda_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError("must be comma-separated numeric Telegram user ids") from exc
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Asia/Kolkata") from exc
        return value

    @field_validator("telegram_base_url", "telegram_base_file_url", "webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None if value == "" else value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                "must be an async SQLAlchemy URL: sqlite+aiosqlite:///file.db "
                "or postgresql+asyncpg://user@host/db"
            )
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "WEBHOOK_SECRET must be set when WEBHOOK_URL is: Telegram sends it with every "
                "update so the bot can refuse forged requests (1-256 characters of A-Z a-z 0-9 _ -)"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(*, env_file: str | None = ".env", **overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one sentence per bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "WEBHOOK_URL"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable} {message} (got {error.get('input')!r}).")
        raise SettingsError(
            "Invalid setting: " + " ".join(problems) + " Fix it in the environment or in .env."
        ) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
