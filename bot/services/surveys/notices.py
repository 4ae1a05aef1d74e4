"""Texts the bot sends about a survey launch: invitations and reminders, per recipient language."""

from __future__ import annotations

from datetime import datetime
from html import escape

from bot.i18n import Translator
from bot.services.outbox import Draft
from bot.services.surveys.model import SurveyDefinition, text_in
from models import Stakeholder, SurveyLaunch

START_PREFIX = "svs"


def start_button(t: Translator, launch_id: int) -> dict:
    # Stored as JSON in the outbox; the sender turns it into Telegram's InlineKeyboardMarkup.
    return {"inline_keyboard": [[{"text": t("▶ Start"), "callback_data": f"{START_PREFIX}:{launch_id}"}]]}


def invitation_text(t: Translator, definition: SurveyDefinition, closes_at: datetime) -> str:
    title = text_in(definition.title, t.language, definition.default_language)
    description = text_in(definition.description, t.language, definition.default_language)
    lines = [t("📋 <b>New survey: {title}</b>").format(title=escape(title))]
    if description:
        lines.append(escape(description))
    if definition.anonymous:
        lines.append(t("This survey is anonymous: your answers are stored without your name."))
    lines.append(t("Please answer by {date}. Press Start when you are ready.").format(date=t.date(closes_at, "long")))
    return "\n\n".join(lines)


def reminder_text(t: Translator, definition: SurveyDefinition, closes_at: datetime) -> str:
    title = text_in(definition.title, t.language, definition.default_language)
    return t(
        "⏰ Reminder: the survey “{title}” closes on {date}. Your answers help plan support for the cluster."
    ).format(title=escape(title), date=t.date(closes_at, "long"))


def invitation_drafts(
    launch: SurveyLaunch, definition: SurveyDefinition, members: list[Stakeholder], *, timezone: str, kind: str = "invite"
) -> list[Draft]:
    drafts = []
    translators: dict[str, Translator] = {}
    for member in members:
        t = translators.setdefault(member.language, Translator(member.language, timezone))
        text = (invitation_text if kind == "invite" else reminder_text)(t, definition, launch.closes_at)
        drafts.append(
            Draft(
                chat_id=member.chat_id,
                stakeholder_id=member.id,
                text=text,
                purpose=f"survey_{kind}",
                ref_id=launch.id,
                reply_markup=start_button(t, launch.id),
                dedupe_key=f"survey_{kind}:{launch.id}:{member.id}",
            )
        )
    return drafts
