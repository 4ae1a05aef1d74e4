from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models import BotSetting

BOT_USERNAME = "bot_username"


async def get_value(session: AsyncSession, *, key: str) -> str | None:
    row = await session.get(BotSetting, key)
    return row.value if row else None


async def set_value(session: AsyncSession, *, key: str, value: str) -> None:
    row = await session.get(BotSetting, key)
    if row is None:
        session.add(BotSetting(key=key, value=value))
    else:
        row.value = value
    await session.commit()


async def insert_if_absent(session: AsyncSession, *, key: str, value: str) -> None:
    """Insert unless another process already did; never fails on the race."""
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    await session.exec(insert(BotSetting).values(key=key, value=value).on_conflict_do_nothing(index_elements=["key"]))
    await session.commit()
