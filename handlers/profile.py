"""/profile (view and change one field at a time), /language and /cancel."""

from __future__ import annotations

from html import escape
from typing import Any

from telegram import Contact, ReplyKeyboardRemove, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import LANGUAGE, PROFILE, REGISTRATION, StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import Translator
from bot.languages import LANGUAGES
from bot.services import dialogs, stakeholders
from bot.services.fields import (
    FIELDS_BY_KEY,
    InvalidAnswer,
    applicable,
    clean_choice,
    clean_text,
    next_missing,
    with_answer,
)
from handlers.common import (
    answer_stale,
    ask_field,
    inline,
    is_skip,
    language_keyboard,
    mark_answered,
    send,
    summary_lines,
)
from handlers.menus import commands_changed
from handlers.registration import show_step
from models import DialogState, Stakeholder
from models.stakeholder import ENTERPRISE_ROLES, SizeClass

VIEW = "view"


def current_answers(stakeholder: Stakeholder) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "name": stakeholder.name,
        "role": stakeholder.role,
        "product": stakeholder.product,
        "phone": stakeholder.phone,
    }
    if stakeholder.role in ENTERPRISE_ROLES:
        if stakeholder.enterprise:
            answers["enterprise"] = stakeholder.enterprise
        if stakeholder.size_class and stakeholder.size_class != SizeClass.NOT_ENTERPRISE:
            answers["size_class"] = stakeholder.size_class
    return answers


def _as_columns(answers: dict[str, Any]) -> dict[str, Any]:
    runs_enterprise = answers.get("role") in ENTERPRISE_ROLES
    return {
        "name": answers["name"],
        "role": answers["role"],
        "product": answers.get("product"),
        "phone": answers.get("phone"),
        "enterprise": answers.get("enterprise") if runs_enterprise else None,
        "size_class": answers.get("size_class") if runs_enterprise else SizeClass.NOT_ENTERPRISE,
    }


async def not_registered(update: Update, context: ClusterContext) -> None:
    await send(
        update,
        context.t("You are not registered yet. Please open the invite link your CDA shared with you."),
    )


async def show_profile(update: Update, context: ClusterContext) -> None:
    t = context.t
    stakeholder = context.stakeholder
    if stakeholder is None:
        await not_registered(update, context)
        return
    async with context.session() as session:
        await dialogs.set_state(session, telegram_user_id=stakeholder.telegram_user_id, flow=PROFILE, step=VIEW)
        clusters = await stakeholders.clusters_of(session, stakeholder=stakeholder)
    answers = current_answers(stakeholder)
    fields = [field for field in applicable(answers)]
    text = (
        t("Your details:")
        + "\n\n"
        + summary_lines(t, fields, answers)
        + "\n<b>"
        + escape(t("Language"))
        + ":</b> "
        + LANGUAGES[stakeholder.language]
        + "\n<b>"
        + escape(t("Clusters"))
        + ":</b> "
        + escape(", ".join(cluster.name for cluster in clusters))
    )
    rows = [
        [(t("Change: {field}").format(field=t(field.label)), step_button(PROFILE, VIEW, field.key))]
        for field in fields
    ]
    await send(update, text, reply_markup=inline(rows), disable_web_page_preview=True)


async def _save(update: Update, context: ClusterContext, answers: dict[str, Any]) -> None:
    stakeholder = context.stakeholder
    missing = next_missing(answers)
    async with context.session() as session:
        if missing is not None:
            # A new role that runs an enterprise needs its name and size before anything is saved.
            await dialogs.set_state(
                session, telegram_user_id=stakeholder.telegram_user_id, flow=PROFILE, step=missing.key,
                data={"answers": answers},
            )
            await ask_field(update, context, PROFILE, missing)
            return
        fresh = await session.get(Stakeholder, stakeholder.id)
        changes = {
            key: value for key, value in _as_columns(answers).items() if getattr(fresh, key) != value
        }
        if changes:
            context.stakeholder = await stakeholders.update_profile(session, stakeholder=fresh, changes=changes)
        await dialogs.clear_state(session, telegram_user_id=stakeholder.telegram_user_id)
    await send(update, context.t("Saved."), reply_markup=ReplyKeyboardRemove())
    await show_profile(update, context)


def _pending(context: ClusterContext, state: DialogState) -> dict[str, Any]:
    return state.data.get("answers") or current_answers(context.stakeholder)


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=update.effective_user.id)
    if context.stakeholder is None or button is None or state is None or state.flow != PROFILE:
        await answer_stale(query, t)
        return
    if state.step == VIEW and button.step == VIEW:
        field = FIELDS_BY_KEY.get(button.value)
        if field is None or not field.applies(current_answers(context.stakeholder)):
            await answer_stale(query, t)
            return
        await mark_answered(query, t("Change: {field}").format(field=t(field.label)))
        async with context.session() as session:
            await dialogs.set_state(session, telegram_user_id=state.telegram_user_id, flow=PROFILE, step=field.key)
        await ask_field(update, context, PROFILE, field)
        return
    field = FIELDS_BY_KEY.get(button.step)
    if button.step != state.step or field is None or field.kind != "choice":
        await answer_stale(query, t)
        return
    try:
        value = clean_choice(field, button.value)
    except InvalidAnswer:
        await answer_stale(query, t)
        return
    await mark_answered(query, t(field.choice_label(value)))
    await _save(update, context, with_answer(_pending(context, state), field.key, value))


async def on_text(update: Update, context: ClusterContext, state: DialogState) -> None:
    t = context.t
    field = FIELDS_BY_KEY.get(state.step)
    text = update.effective_message.text or ""
    if field is None:
        await send(update, t("Please use the buttons below."))
        await show_profile(update, context)
        return
    if field.kind == "contact":
        if is_skip(t, text):
            await _save(update, context, with_answer(_pending(context, state), "phone", None))
        else:
            await ask_field(update, context, PROFILE, field, hint=t("Please press “Share my phone number” or “Skip”."))
        return
    if field.kind == "choice":
        await ask_field(update, context, PROFILE, field, hint=t("Please use the buttons below."))
        return
    try:
        value = clean_text(text)
    except InvalidAnswer as problem:
        await ask_field(update, context, PROFILE, field, hint=t(str(problem)))
        return
    await _save(update, context, with_answer(_pending(context, state), field.key, value))


async def on_contact(update: Update, context: ClusterContext, state: DialogState) -> None:
    t = context.t
    contact: Contact = update.effective_message.contact
    field = FIELDS_BY_KEY.get(state.step)
    if field is None or field.kind != "contact":
        await send(update, t("Please use the buttons below."))
        return
    if contact.user_id != update.effective_user.id:
        await ask_field(update, context, PROFILE, field, hint=t("That is someone else's contact. You can only share your own number."))
        return
    await _save(update, context, with_answer(_pending(context, state), "phone", contact.phone_number))


async def choose_language(update: Update, context: ClusterContext) -> None:
    await send(
        update,
        context.t("Please choose your language."),
        reply_markup=language_keyboard(LANGUAGE, "pick", context.language),
    )


async def on_language_button(update: Update, context: ClusterContext) -> None:
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    if button is None or button.value not in LANGUAGES:
        await answer_stale(query, context.t)
        return
    await mark_answered(query, LANGUAGES[button.value])
    async with context.session() as session:
        await stakeholders.set_language(session, telegram_user_id=update.effective_user.id, language=button.value)
        state = await dialogs.get_state(session, telegram_user_id=update.effective_user.id)
    context.language = button.value
    context.t = Translator(button.value, context.settings.timezone)
    await send(update, context.t("Done. I will write to you in {language}.").format(language=LANGUAGES[button.value]))
    await commands_changed(context.bot, context, update.effective_user.id)
    if state is not None and state.flow == REGISTRATION:
        await show_step(update, context, state)


async def cancel(update: Update, context: ClusterContext) -> None:
    t = context.t
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=update.effective_user.id)
        if state is not None and state.flow == REGISTRATION:
            await stakeholders.discard_draft(session, telegram_user_id=update.effective_user.id)
            text = t(
                "Registration stopped. Nothing was saved. To start again, open your CDA's invite link."
            )
        else:
            await dialogs.clear_state(session, telegram_user_id=update.effective_user.id)
            text = t("Stopped. Everything you saved before is kept.")
    await send(update, text, reply_markup=ReplyKeyboardRemove())


FLOW = PROFILE

HANDLERS = [
    CommandHandler("profile", show_profile, filters=filters.ChatType.PRIVATE),
    CommandHandler("language", choose_language, filters=filters.ChatType.PRIVATE),
    CommandHandler("cancel", cancel, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{PROFILE}:"),
    CallbackQueryHandler(on_language_button, pattern=rf"^{LANGUAGE}:"),
]
