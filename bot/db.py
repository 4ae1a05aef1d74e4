"""The async engine, sessions and schema migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Executable, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.sqlite import OneTripConnection, async_creator

MIGRATIONS = Path(__file__).resolve().parent.parent / "models" / "migrations"

SessionMaker = async_sessionmaker[AsyncSession]


def _tune_sqlite(dbapi_connection, _record) -> None:
    # WAL lets readers run beside the single writer; the busy timeout makes a second writer wait
    # instead of failing; SQLite leaves foreign keys off unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a killed process (only a power cut can lose the last
    # commits) and makes each commit several times cheaper; the outbox commits once per message.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, async_creator=async_creator(url, timeout=10))
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    # expire_on_commit=False: handlers read rows after committing, and a lazy refresh there would
    # need a greenlet they do not have.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def execute_and_commit(session: AsyncSession, statement: Executable, params: dict | None = None) -> None:
    """Run one data-changing statement and commit the session's transaction with it.

    On SQLite statement and commit make one trip to the connection's thread; elsewhere this is
    execute, then commit.
    """
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    one_trip = isinstance(driver, OneTripConnection)
    if one_trip:
        driver.commit_with_next_statement = True
    try:
        await connection.execute(statement, params)
    finally:
        if one_trip:
            driver.commit_with_next_statement = False
    await session.commit()


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade_database(engine: AsyncEngine) -> None:
    """Apply every pending migration on the given engine."""

    def _upgrade(sync_connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
