"""Typed messages and shared contacts go to whichever persisted flow the user is in."""

from __future__ import annotations

from telegram import Update
from telegram.ext import MessageHandler, filters

from bot.callbacks import PROFILE, REGISTRATION
from bot.context import ClusterContext
from bot.services import dialogs
from handlers import profile, registration
from handlers.common import send

TEXT_ROUTES = {REGISTRATION: registration.on_text, PROFILE: profile.on_text}
CONTACT_ROUTES = {REGISTRATION: registration.on_contact, PROFILE: profile.on_contact}


async def _state(update: Update, context: ClusterContext):
    async with context.session() as session:
        return await dialogs.get_state(session, telegram_user_id=update.effective_user.id)


async def on_text(update: Update, context: ClusterContext) -> None:
    state = await _state(update, context)
    route = TEXT_ROUTES.get(state.flow) if state else None
    if route is not None:
        await route(update, context, state)
    elif state is not None:
        await send(update, context.t("Please use the buttons below."))
    else:
        await send(update, context.t("I did not understand that. Send /help to see what you can do."))


async def on_contact(update: Update, context: ClusterContext) -> None:
    state = await _state(update, context)
    route = CONTACT_ROUTES.get(state.flow) if state else None
    if route is not None:
        await route(update, context, state)
    else:
        await send(update, context.t("I did not understand that. Send /help to see what you can do."))


async def on_unknown_command(update: Update, context: ClusterContext) -> None:
    await send(update, context.t("I did not understand that. Send /help to see what you can do."))


HANDLERS = [
    MessageHandler(filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    MessageHandler(filters.ChatType.PRIVATE & filters.CONTACT, on_contact),
]
FALLBACK = [MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, on_unknown_command)]
