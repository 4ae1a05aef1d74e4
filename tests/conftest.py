"""Fixtures: a fresh migrated database per test (SQLite, or PostgreSQL when TEST_DATABASE_URL is
set), and the real Application wired to an in-process fake Bot API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import build_application, post_init
from bot.config import Settings, load_settings
from bot.db import create_engine, create_sessionmaker, upgrade_database
from tests.botapi import FakeBotApi, RecordingRequest
from tests.chat import ChatUser

CDA_ID = 900_000_001
BOT_TOKEN = "123456:TEST-TOKEN"


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _private_database(url: str) -> str:
    """A database of this test run's own, so parallel runs on one server do not collide."""
    base = make_url(url)
    name = f"{base.database}_run{os.getpid()}"
    engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


async def _drop_database(url: str, name: str) -> None:
    engine = create_async_engine(make_url(url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


_PRIVATE: dict[str, str] = {}


def pytest_sessionfinish(session, exitstatus):
    base = os.environ.get("TEST_DATABASE_URL")
    if base and base in _PRIVATE:
        import asyncio

        asyncio.run(_drop_database(base, make_url(_PRIVATE[base]).database))


@pytest.fixture
async def database_url(tmp_path) -> AsyncIterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        if url not in _PRIVATE:
            _PRIVATE[url] = await _private_database(url)
        url = _PRIVATE[url]
        await _reset_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    engine = create_engine(url)
    await upgrade_database(engine)
    await engine.dispose()
    yield url


@pytest.fixture
async def sessionmaker(database_url):
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


def make_settings(database_url: str, **overrides) -> Settings:
    values = {
        "bot_token": BOT_TOKEN,
        "database_url": database_url,
        "cda_user_ids": str(CDA_ID),
        "default_language": "en",
        "timezone": "Asia/Kolkata",
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


@pytest.fixture
def settings(database_url) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def api() -> FakeBotApi:
    return FakeBotApi(token=BOT_TOKEN)


async def start_app(settings: Settings, api: FakeBotApi):
    application = build_application(
        settings,
        request=RecordingRequest(api),
        updates_request=RecordingRequest(api),
        rate_limiter=False,
        background=False,
    )
    await application.initialize()
    await post_init(application)
    return application


async def stop_app(application) -> None:
    await application.shutdown()
    await application.post_shutdown(application)


@pytest.fixture
async def app(settings, api):
    application = await start_app(settings, api)
    yield application
    await stop_app(application)


@pytest.fixture
def user_factory(app, api):
    def make(user_id: int, **kwargs) -> ChatUser:
        return ChatUser(app, api, user_id, **kwargs)

    return make
