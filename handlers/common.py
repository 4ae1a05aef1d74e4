"""Rendering shared by the feature handlers: keyboards, questions, answered and stale buttons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest

from bot.callbacks import step_button
from bot.context import ClusterContext
from bot.i18n import Translator
from bot.languages import LANGUAGES
from bot.services import dialogs
from bot.services.fields import ProfileField


def inline(rows: Iterable[Sequence[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


def one_per_row(buttons: Iterable[tuple[str, str]]) -> InlineKeyboardMarkup:
    return inline([button] for button in buttons)


def language_keyboard(flow: str, step: str, first: str | None) -> InlineKeyboardMarkup:
    codes = list(LANGUAGES)
    if first in codes:
        codes.remove(first)
        codes.insert(0, first)
    buttons = [(LANGUAGES[code], step_button(flow, step, code)) for code in codes]
    return inline(buttons[i : i + 2] for i in range(0, len(buttons), 2))


async def load_flow(context: ClusterContext):
    """The user's persisted flow state (dialog_state row), or None."""
    async with context.session() as session:
        return await dialogs.get_state(session, telegram_user_id=context._user_id)


async def save_step(context: ClusterContext, step: str, data: dict[str, Any], *, flow: str) -> None:
    async with context.session() as session:
        await dialogs.set_state(session, telegram_user_id=context._user_id, flow=flow, step=step, data=data)


async def clear_flow(context: ClusterContext) -> None:
    async with context.session() as session:
        await dialogs.clear_state(session, telegram_user_id=context._user_id)


async def send(update: Update, text: str, **kwargs: Any) -> Message:
    return await update.effective_chat.send_message(text, **kwargs)


def field_value(t: Translator, field: ProfileField, answers: Mapping[str, Any]) -> str:
    value = answers.get(field.key)
    if value is None:
        return t("not given")
    label = field.choice_label(value)
    return t(label) if label else escape(str(value))


def summary_lines(t: Translator, fields: Iterable[ProfileField], answers: Mapping[str, Any]) -> str:
    return "\n".join(
        f"<b>{escape(t(field.label))}:</b> {field_value(t, field, answers)}" for field in fields
    )


def phone_keyboard(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(t("Share my phone number"), request_contact=True)], [t("Skip")]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def is_skip(t: Translator, text: str) -> bool:
    return text.strip().casefold() in {t("Skip").casefold(), "skip"}


async def ask_field(
    update: Update, context: ClusterContext, flow: str, field: ProfileField, *, hint: str | None = None
) -> None:
    t = context.t
    text = t(field.prompt)
    if hint:
        text = f"{hint}\n\n{text}"
    if field.kind == "choice":
        markup = one_per_row((t(label), step_button(flow, field.key, value)) for value, label in field.choices)
    elif field.kind == "contact":
        markup = phone_keyboard(t)
    else:
        markup = ReplyKeyboardRemove()
    await send(update, text, reply_markup=markup)


async def mark_answered(query: CallbackQuery, answer: str) -> None:
    """Show the chosen answer under the question and leave no button live."""
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    original = message.text_html or ""
    try:
        await message.edit_text(f"{original}\n\n✓ <b>{escape(answer)}</b>", reply_markup=None)
    except BadRequest:
        # The message may be too old to edit; the answer is saved regardless.
        pass


async def answer_stale(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("This question is no longer open."), show_alert=False)
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_reply_markup(reply_markup=None)
        except BadRequest:
            pass
