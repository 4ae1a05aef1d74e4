"""Persisted chat-flow state: one row per user, committed at every step."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import DialogState
from models.base import utcnow


async def get_state(session: AsyncSession, *, telegram_user_id: int) -> DialogState | None:
    return await session.get(DialogState, telegram_user_id)


async def set_state(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    flow: str,
    step: str,
    data: dict[str, Any] | None = None,
) -> DialogState:
    state = await session.get(DialogState, telegram_user_id)
    if state is None:
        state = DialogState(telegram_user_id=telegram_user_id, flow=flow, step=step)
        session.add(state)
    state.flow, state.step = flow, step
    state.data = dict(data or {})
    state.updated_at = utcnow()
    await session.commit()
    return state


async def clear_state(session: AsyncSession, *, telegram_user_id: int) -> None:
    state = await session.get(DialogState, telegram_user_id)
    if state is not None:
        await session.delete(state)
        await session.commit()
