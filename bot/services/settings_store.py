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
