"""/start and the registration journey: language, consent, profile fields, summary, saved.

Every step is a row in dialog_state, committed before the next question is sent.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from telegram import Contact, ReplyKeyboardRemove, Update
from telegram.ext import CallbackQueryHandler

from bot.callbacks import JOIN, REGISTRATION, StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import Translator
from bot.languages import LANGUAGES, shipped
from bot.services import clusters as cluster_service
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
from handlers.help import help_text
from handlers.menus import commands_changed
from models import Cluster, DialogState
from models.base import utcnow

LANGUAGE_STEP, CONSENT_STEP, SUMMARY_STEP = "language", "consent", "summary"


def consent_notice(t: Translator, cluster: Cluster) -> str:
    return t(
        "<b>Before we start: your data</b>\n\n"
        "<b>What we keep:</b> your name, your role, your enterprise and what it makes, its size, "
        "your phone number only if you share it, your language, and your answers to surveys and reports.\n"
        "<b>Why:</b> so that the Cluster Development Agent (CDA) of {cluster} can invite you to meetings "
        "and activities, ask for your views, and plan support for the cluster.\n"
        "<b>Who can see it:</b> only the CDAs of your cluster and the implementing agency. "
        "We never sell it or share it for advertising.\n"
        "<b>Your rights:</b> send /mydata at any time to get everything we keep about you, "
        "and /forget to erase it.\n\n"
        "Do you agree?"
    ).format(cluster=escape(cluster.name))


async def start(update: Update, context: ClusterContext) -> None:
    t = context.t
    user = update.effective_user
    payload = context.args[0] if context.args else None
    async with context.session() as session:
        stakeholder = context.stakeholder
        state = await dialogs.get_state(session, telegram_user_id=user.id)
        if payload is None:
            if stakeholder is not None or context.is_cda:
                await send(update, help_text(context), reply_markup=ReplyKeyboardRemove())
            elif state is not None and state.flow == REGISTRATION:
                await show_step(update, context, state)
            else:
                await send(
                    update,
                    t(
                        "Hello! This bot connects the members of an industrial cluster with their "
                        "Cluster Development Agent (CDA).\n\nTo join, please open the invite link "
                        "or scan the QR code that your CDA shared with you."
                    ),
                )
            return

        cluster = await cluster_service.get_cluster_by_code(session, code=payload)
        if cluster is None:
            await send(
                update,
                t(
                    "This invite link is not valid. Please check that you copied the whole link, "
                    "or ask your CDA for a new one."
                ),
            )
            return

        if stakeholder is not None:
            if await stakeholders.is_member(session, stakeholder=stakeholder, cluster_id=cluster.id):
                await send(update, t("You are already a member of {cluster}.").format(cluster=escape(cluster.name)))
                return
            await dialogs.set_state(
                session, telegram_user_id=user.id, flow=JOIN, step="confirm", data={"cluster_id": cluster.id}
            )
            await send(
                update,
                t("You are registered already. Do you also want to join {cluster}?").format(
                    cluster=escape(cluster.name)
                ),
                reply_markup=inline(
                    [
                        [
                            (t("Yes, join"), step_button(JOIN, "confirm", "yes")),
                            (t("No"), step_button(JOIN, "confirm", "no")),
                        ]
                    ]
                ),
            )
            return

        if state is not None and state.flow == REGISTRATION:
            # Opening the link again mid-way keeps the answers given so far.
            state = await dialogs.set_state(
                session,
                telegram_user_id=user.id,
                flow=REGISTRATION,
                step=state.step,
                data={**state.data, "cluster_id": cluster.id},
            )
        else:
            state = await dialogs.set_state(
                session,
                telegram_user_id=user.id,
                flow=REGISTRATION,
                step=LANGUAGE_STEP,
                data={"cluster_id": cluster.id, "answers": {}},
            )
    await show_step(update, context, state)


async def _cluster(context: ClusterContext, state: DialogState) -> Cluster | None:
    async with context.session() as session:
        return await session.get(Cluster, state.data.get("cluster_id"))


async def show_step(update: Update, context: ClusterContext, state: DialogState, *, hint: str | None = None) -> None:
    """Ask the question of the user's current registration step (again)."""
    t = context.t
    cluster = await _cluster(context, state)
    if cluster is None:
        # The cluster was deleted while the user was registering.
        async with context.session() as session:
            await dialogs.clear_state(session, telegram_user_id=state.telegram_user_id)
        await send(update, t("This invite link is not valid. Please check that you copied the whole link, or ask your CDA for a new one."))
        return
    prefix = f"{hint}\n\n" if hint else ""
    if state.step == LANGUAGE_STEP:
        await send(
            update,
            prefix
            + t("Welcome to {cluster}!\n\nPlease choose your language.").format(cluster=escape(cluster.name)),
            reply_markup=language_keyboard(REGISTRATION, LANGUAGE_STEP, shipped(update.effective_user.language_code)),
        )
    elif state.step == CONSENT_STEP:
        await send(
            update,
            prefix + consent_notice(t, cluster),
            reply_markup=inline(
                [
                    [
                        (t("I agree"), step_button(REGISTRATION, CONSENT_STEP, "agree")),
                        (t("I do not agree"), step_button(REGISTRATION, CONSENT_STEP, "decline")),
                    ]
                ]
            ),
        )
    elif state.step == SUMMARY_STEP:
        await show_summary(update, context, state, hint=hint)
    else:
        await ask_field(update, context, REGISTRATION, FIELDS_BY_KEY[state.step], hint=hint)


async def show_summary(update: Update, context: ClusterContext, state: DialogState, *, hint: str | None = None) -> None:
    t = context.t
    answers = state.data.get("answers", {})
    fields = applicable(answers)
    text = t("Please check your details:") + "\n\n" + summary_lines(t, fields, answers)
    if hint:
        text = f"{hint}\n\n{text}"
    rows = [[(t("✅ Confirm"), step_button(REGISTRATION, SUMMARY_STEP, "confirm"))]]
    rows += [
        [(t("Change: {field}").format(field=t(field.label)), step_button(REGISTRATION, SUMMARY_STEP, f"edit:{field.key}"))]
        for field in fields
    ]
    await send(update, text, reply_markup=inline(rows))


async def _advance(update: Update, context: ClusterContext, state: DialogState, answers: dict[str, Any]) -> None:
    """Store the answers, move to the first unanswered field (or the summary) and ask it."""
    missing = next_missing(answers)
    async with context.session() as session:
        state = await dialogs.set_state(
            session,
            telegram_user_id=state.telegram_user_id,
            flow=REGISTRATION,
            step=missing.key if missing else SUMMARY_STEP,
            data={**state.data, "answers": answers},
        )
    await show_step(update, context, state)


async def _current_state(context: ClusterContext, user_id: int) -> DialogState | None:
    async with context.session() as session:
        return await dialogs.get_state(session, telegram_user_id=user_id)


async def on_button(update: Update, context: ClusterContext) -> None:
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    state = await _current_state(context, update.effective_user.id)
    if button is None or state is None or state.flow != REGISTRATION or state.step != button.step:
        await answer_stale(query, context.t)
        if state is not None and state.flow == REGISTRATION:
            await show_step(update, context, state)
        return

    if button.step == LANGUAGE_STEP:
        if button.value not in LANGUAGES:
            await answer_stale(query, context.t)
            return
        await mark_answered(query, LANGUAGES[button.value])
        async with context.session() as session:
            await stakeholders.set_language(session, telegram_user_id=state.telegram_user_id, language=button.value)
            state = await dialogs.set_state(
                session, telegram_user_id=state.telegram_user_id, flow=REGISTRATION, step=CONSENT_STEP, data=state.data
            )
        context.language = button.value
        context.t = Translator(button.value, context.settings.timezone)
        await show_step(update, context, state)
        return

    t = context.t
    if button.step == CONSENT_STEP:
        if button.value == "agree":
            await mark_answered(query, t("I agree"))
            data = {**state.data, "consent_at": utcnow().isoformat()}
            async with context.session() as session:
                state = await dialogs.set_state(
                    session, telegram_user_id=state.telegram_user_id, flow=REGISTRATION, step=CONSENT_STEP, data=data
                )
            await _advance(update, context, state, data.get("answers", {}))
        else:
            await mark_answered(query, t("I do not agree"))
            async with context.session() as session:
                # Declining keeps nothing, not even the language picked a moment ago.
                await stakeholders.discard_draft(session, telegram_user_id=state.telegram_user_id)
            await send(
                update,
                t(
                    "All right. We have not kept anything about you.\n\n"
                    "If you change your mind, open your CDA's invite link again."
                ),
            )
        return

    if button.step == SUMMARY_STEP:
        await _on_summary_button(update, context, state, button.value)
        return

    field = FIELDS_BY_KEY.get(button.step)
    try:
        value = clean_choice(field, button.value) if field and field.kind == "choice" else None
    except InvalidAnswer:
        value = None
    if value is None:
        await answer_stale(query, t)
        await show_step(update, context, state)
        return
    await mark_answered(query, t(field.choice_label(value)))
    await _advance(update, context, state, with_answer(state.data.get("answers", {}), field.key, value))


async def _on_summary_button(update: Update, context: ClusterContext, state: DialogState, value: str) -> None:
    t = context.t
    query = update.callback_query
    answers = state.data.get("answers", {})
    if value.startswith("edit:"):
        field = FIELDS_BY_KEY.get(value.removeprefix("edit:"))
        if field is None or not field.applies(answers):
            await answer_stale(query, t)
            return
        await mark_answered(query, t("Change: {field}").format(field=t(field.label)))
        async with context.session() as session:
            state = await dialogs.set_state(
                session, telegram_user_id=state.telegram_user_id, flow=REGISTRATION, step=field.key, data=state.data
            )
        await show_step(update, context, state)
        return
    if value != "confirm" or next_missing(answers) is not None or "consent_at" not in state.data:
        await answer_stale(query, t)
        await show_step(update, context, state)
        return
    await mark_answered(query, t("✅ Confirm"))
    user = update.effective_user
    async with context.session() as session:
        cluster = await session.get(Cluster, state.data["cluster_id"])
        stakeholder = await stakeholders.register(
            session,
            telegram_user_id=user.id,
            chat_id=update.effective_chat.id,
            cluster_id=state.data["cluster_id"],
            answers=answers,
            language=context.language,
            consent_at=datetime.fromisoformat(state.data["consent_at"]),
        )
    context.stakeholder = stakeholder
    await send(
        update,
        t("Thank you, {name}! You are now a member of {cluster}.").format(
            name=escape(stakeholder.name), cluster=escape(cluster.name)
        )
        + "\n\n"
        + help_text(context),
        reply_markup=ReplyKeyboardRemove(),
    )
    await commands_changed(context.bot, context, user.id)


async def on_text(update: Update, context: ClusterContext, state: DialogState) -> None:
    """A typed message while registering: an answer to a text field, or the wrong kind of input."""
    t = context.t
    text = update.effective_message.text or ""
    field = FIELDS_BY_KEY.get(state.step)
    if field is not None and field.kind == "text":
        try:
            value = clean_text(text)
        except InvalidAnswer as problem:
            await show_step(update, context, state, hint=t(str(problem)))
            return
        await _advance(update, context, state, with_answer(state.data.get("answers", {}), field.key, value))
        return
    if field is not None and field.kind == "contact":
        if is_skip(t, text):
            await send(update, t("All right, no phone number."), reply_markup=ReplyKeyboardRemove())
            await _advance(update, context, state, with_answer(state.data.get("answers", {}), "phone", None))
            return
        await show_step(update, context, state, hint=t("Please press “Share my phone number” or “Skip”."))
        return
    await show_step(update, context, state, hint=t("Please use the buttons below."))


async def on_contact(update: Update, context: ClusterContext, state: DialogState) -> None:
    t = context.t
    contact: Contact = update.effective_message.contact
    field = FIELDS_BY_KEY.get(state.step)
    if field is None or field.kind != "contact":
        await show_step(update, context, state, hint=t("Please use the buttons below."))
        return
    if contact.user_id != update.effective_user.id:
        await show_step(
            update, context, state, hint=t("That is someone else's contact. You can only share your own number.")
        )
        return
    await send(update, t("Thank you."), reply_markup=ReplyKeyboardRemove())
    await _advance(update, context, state, with_answer(state.data.get("answers", {}), "phone", contact.phone_number))


async def on_join_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    state = await _current_state(context, update.effective_user.id)
    if button is None or state is None or state.flow != JOIN or context.stakeholder is None:
        await answer_stale(query, t)
        return
    async with context.session() as session:
        cluster = await session.get(Cluster, state.data.get("cluster_id"))
        await dialogs.clear_state(session, telegram_user_id=state.telegram_user_id)
        if button.value != "yes" or cluster is None:
            await mark_answered(query, t("No"))
            await send(update, t("All right, nothing has changed."))
            return
        await mark_answered(query, t("Yes, join"))
        await stakeholders.join_cluster(session, stakeholder=context.stakeholder, cluster_id=cluster.id)
    await send(update, t("You are now a member of {cluster} too.").format(cluster=escape(cluster.name)))


FLOW = REGISTRATION

HANDLERS = [
    CallbackQueryHandler(on_button, pattern=rf"^{REGISTRATION}:"),
    CallbackQueryHandler(on_join_button, pattern=rf"^{JOIN}:"),
]
