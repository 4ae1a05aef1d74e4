"""The benchmarks' database: optionally a wiped PostgreSQL schema, migrated to head."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import create_engine, upgrade_database


async def migrated_engine(url: str, *, reset_postgres: bool) -> AsyncEngine:
    """An engine on ``url`` with every migration applied; on PostgreSQL with ``reset_postgres``
    the ``public`` schema is dropped first, so each run starts from nothing."""
    engine = create_engine(url)
    try:
        if url.startswith("postgresql") and reset_postgres:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        await upgrade_database(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
