"""Set-up shared by the survey journeys: members, a launch through /launch, the outbox drained."""

from __future__ import annotations

from sqlmodel import select

from bot.services.stakeholders import register
from bot.services.surveys import service as surveys
from bot.services.surveys.loaders import load_file
from models import Survey, SurveyLaunch
from models.base import utcnow
from tests.chat import ChatUser
from tests.conftest import CDA_ID
from tests.helpers import tr


async def add_member(sessionmaker, cluster, user_id: int, name: str, language: str, role: str = "msme_owner", enterprise: str | None = None):
    async with sessionmaker() as session:
        return await register(
            session, telegram_user_id=user_id, chat_id=user_id, cluster_id=cluster.id,
            answers={"name": name, "role": role, "product": "brass", "enterprise": enterprise},
            language=language, consent_at=utcnow(),
        )


async def import_into(sessionmaker, cluster, path) -> Survey:
    async with sessionmaker() as session:
        return await surveys.import_survey(session, cluster=cluster, result=load_file(path), source="test")


async def launch_via_chat(app, api, form_title: str, *, language: str = "en") -> SurveyLaunch:
    """The CDA sends a survey to everyone, closing in a week, and the outbox delivers it."""
    cda = ChatUser(app, api, CDA_ID, language_code=language)
    await cda.send("/launch")
    await cda.click(form_title)
    await cda.click(tr(language, "Everyone in the cluster"))
    await cda.click(tr(language, "In {count} days").replace("{count}", "7") if language == "en" else _days_label(language, 7))
    assert tr(language, "Each person gets this message in their own language, with a Start button:") in cda.last_text()
    await cda.click(tr(language, "📤 Send"))
    await app.deps.extra["sender"].drain()
    async with app.deps.sessionmaker() as session:
        return (await session.exec(select(SurveyLaunch).order_by(SurveyLaunch.id.desc()))).first()


def _days_label(language: str, days: int) -> str:
    from bot.i18n import Translator

    t = Translator(language)
    return t.ngettext("In {count} day", "In {count} days", days).format(count=t.number(days))
