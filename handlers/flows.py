"""Typed messages and shared contacts go to whichever persisted flow the user is in."""

from __future__ import annotations

from telegram import Update
from telegram.ext import MessageHandler, filters

from bot.context import ClusterContext
from handlers import (
    activity,
    broadcast,
    meeting,
    profile,
    registration,
    report,
    stats,
    survey,
    survey_admin,
)
from handlers.common import send

# Each feature module that keeps a persisted flow names it FLOW and may take typed text, contacts,
# photos, locations or documents with on_text / on_contact / on_photo / on_location / on_document.
FLOW_MODULES = (registration, profile, survey, survey_admin, broadcast, activity, meeting, report, stats)


def _routes(kind: str) -> dict:
    return {module.FLOW: getattr(module, kind) for module in FLOW_MODULES if hasattr(module, kind)}


TEXT_ROUTES = _routes("on_text")
CONTACT_ROUTES = _routes("on_contact")
PHOTO_ROUTES = _routes("on_photo")
LOCATION_ROUTES = _routes("on_location")
DOCUMENT_ROUTES = _routes("on_document")


async def on_text(update: Update, context: ClusterContext) -> None:
    state = context.dialog_state
    route = TEXT_ROUTES.get(state.flow) if state else None
    if route is not None:
        await route(update, context, state)
    elif state is not None:
        await send(update, context.t("Please use the buttons below."))
    else:
        await send(update, context.t("I did not understand that. Send /help to see what you can do."))


def _router(routes):
    async def route_message(update: Update, context: ClusterContext) -> None:
        state = context.dialog_state
        route = routes.get(state.flow) if state else None
        if route is not None:
            await route(update, context, state)
        elif state is not None and state.flow in TEXT_ROUTES:
            # The right flow, the wrong kind of message (a file where a photo is asked...).
            await TEXT_ROUTES[state.flow](update, context, state)
        else:
            await send(update, context.t("I did not understand that. Send /help to see what you can do."))

    return route_message


on_contact = _router(CONTACT_ROUTES)
on_photo = _router(PHOTO_ROUTES)
on_location = _router(LOCATION_ROUTES)
on_document = _router(DOCUMENT_ROUTES)
on_other = _router({})


async def on_unknown_command(update: Update, context: ClusterContext) -> None:
    await send(update, context.t("I did not understand that. Send /help to see what you can do."))


HANDLERS = [
    MessageHandler(filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    MessageHandler(filters.ChatType.PRIVATE & filters.CONTACT, on_contact),
    MessageHandler(filters.ChatType.PRIVATE & filters.PHOTO, on_photo),
    MessageHandler(filters.ChatType.PRIVATE & filters.LOCATION, on_location),
    MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, on_document),
    MessageHandler(filters.ChatType.PRIVATE & (filters.VOICE | filters.VIDEO | filters.Sticker.ALL), on_other),
]
FALLBACK = [MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, on_unknown_command)]
