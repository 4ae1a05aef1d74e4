"""Alembic owns the schema: the migrations must produce exactly the models' tables."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import models
from bot.db import create_engine


async def test_migrations_match_models(database_url):
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), models.metadata
            )
        )
    await engine.dispose()
    assert diff == []


async def test_sqlite_is_tuned(database_url):
    if not database_url.startswith("sqlite"):
        return
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
        foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    await engine.dispose()
    assert (journal, foreign_keys, busy) == ("wal", 1, 10000)
