"""Small helpers shared by the tests: clusters, queries and translated expectations."""

from __future__ import annotations

from sqlmodel import select

from bot.i18n import Translator
from bot.services.clusters import create_cluster
from models import Cluster, DialogState, Membership, Stakeholder, UserPreference


async def make_cluster(sessionmaker, name: str = "Moradabad Brassware", **kwargs) -> Cluster:
    async with sessionmaker() as session:
        return await create_cluster(session, name=name, **kwargs)


async def stakeholder_of(sessionmaker, user_id: int) -> Stakeholder | None:
    async with sessionmaker() as session:
        result = await session.exec(select(Stakeholder).where(Stakeholder.telegram_user_id == user_id))
        return result.first()


async def rows_about(sessionmaker, user_id: int) -> dict[str, int]:
    """How many rows of personal data exist for one Telegram user."""
    async with sessionmaker() as session:
        stakeholders = (await session.exec(select(Stakeholder).where(Stakeholder.telegram_user_id == user_id))).all()
        ids = [s.id for s in stakeholders]
        memberships = (await session.exec(select(Membership).where(Membership.stakeholder_id.in_(ids)))).all() if ids else []
        states = (await session.exec(select(DialogState).where(DialogState.telegram_user_id == user_id))).all()
        prefs = (await session.exec(select(UserPreference).where(UserPreference.telegram_user_id == user_id))).all()
    return {
        "stakeholder": len(stakeholders),
        "membership": len(memberships),
        "dialog_state": len(states),
        "user_preference": len(prefs),
    }


def tr(lang: str, msgid: str, /, **values) -> str:
    text = Translator(lang)(msgid)
    return text.format(**values) if values else text


def tr_first_line(lang: str, msgid: str, /, **values) -> str:
    return tr(lang, msgid, **values).split("\n")[0]
