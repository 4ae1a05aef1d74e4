"""/mydata and /forget: the rights the consent notice promises."""

from __future__ import annotations

import json

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import FORGET, StepButton, step_button
from bot.context import ClusterContext
from bot.services import dialogs, stakeholders
from handlers.common import answer_stale, inline, mark_answered, send
from handlers.menus import clear_chat_menu


async def send_my_data(update: Update, context: ClusterContext) -> None:
    async with context.session() as session:
        document = await stakeholders.export_personal_data(
            session, telegram_user_id=update.effective_user.id
        )
    payload = json.dumps(document, ensure_ascii=False, indent=2).encode()
    await update.effective_chat.send_document(
        payload,
        filename="mydata.json",
        caption=context.t("This is everything we keep about you."),
    )


async def ask_forget(update: Update, context: ClusterContext) -> None:
    t = context.t
    user_id = update.effective_user.id
    async with context.session() as session:
        document = await stakeholders.export_personal_data(session, telegram_user_id=user_id)
        if not ({"profile", "language_preference", "unfinished_step"} & document.keys()):
            await send(update, t("We keep no personal data about you."))
            return
        await dialogs.set_state(session, telegram_user_id=user_id, flow=FORGET, step="confirm")
    await send(
        update,
        t(
            "Do you want us to erase all your personal data? You will leave every cluster and "
            "stop getting messages. Answers to anonymous surveys stay, without your name. "
            "This cannot be undone."
        ),
        reply_markup=inline(
            [
                [
                    (t("Yes, erase my data"), step_button(FORGET, "confirm", "yes")),
                    (t("No, keep it"), step_button(FORGET, "confirm", "no")),
                ]
            ]
        ),
    )


async def on_forget_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    user_id = update.effective_user.id
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=user_id)
        if button is None or state is None or state.flow != FORGET:
            await answer_stale(query, t)
            return
        if button.value != "yes":
            await dialogs.clear_state(session, telegram_user_id=user_id)
            await mark_answered(query, t("No, keep it"))
            await send(update, t("All right, nothing has changed."))
            return
        await mark_answered(query, t("Yes, erase my data"))
        await stakeholders.forget(session, telegram_user_id=user_id)
    context.stakeholder = None
    await send(
        update,
        t(
            "Your personal data has been erased. If you want to join again one day, "
            "open your CDA's invite link."
        ),
    )
    await clear_chat_menu(context.bot, user_id)


HANDLERS = [
    CommandHandler("mydata", send_my_data, filters=filters.ChatType.PRIVATE),
    CommandHandler("forget", ask_forget, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_forget_button, pattern=rf"^{FORGET}:"),
]
