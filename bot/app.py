"""The one place that builds the Application and registers every handler, in order."""

from __future__ import annotations

import gc
import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    Defaults,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.config import Settings
from bot.context import ClusterApplication, ClusterContext, Deps
from bot.db import create_engine, create_sessionmaker
from bot.http import AiohttpRequest
from bot.jobs import schedule_jobs
from bot.sender import OutboxSender
from bot.services.settings_store import BOT_USERNAME, set_value
from bot.updates import PerUserUpdateProcessor
from handlers import (
    activity,
    broadcast,
    cda,
    chat_member,
    flows,
    help,
    meeting,
    privacy,
    profile,
    registration,
    report,
    stats,
    survey,
    survey_admin,
)
from handlers.context import load_user
from handlers.menus import publish_menus

log = logging.getLogger(__name__)


def add_handlers(application: ClusterApplication) -> None:
    # Group -2 runs first for every update: who is writing, their language and rights; group -1
    # refuses CDA commands to everyone else before any feature handler sees them.
    application.add_handler(TypeHandler(Update, load_user), group=-2)
    application.add_handler(cda.GUARD, group=-1)
    handlers = [
        CommandHandler("start", registration.start, filters=filters.ChatType.PRIVATE),
        *help.HANDLERS,
        *profile.HANDLERS,
        *privacy.HANDLERS,
        *cda.HANDLERS,
        *registration.HANDLERS,
        *survey.HANDLERS,
        *survey_admin.HANDLERS,
        *broadcast.HANDLERS,
        *activity.HANDLERS,
        *meeting.HANDLERS,
        *report.HANDLERS,
        *stats.HANDLERS,
        *chat_member.HANDLERS,
        # Typed answers and contacts are routed by the user's stored flow, so they come last.
        *flows.HANDLERS,
        *flows.FALLBACK,
    ]
    for handler in handlers:
        application.add_handler(handler)


async def post_init(application: ClusterApplication) -> None:
    me = await application.bot.get_me()
    async with application.deps.sessionmaker() as session:
        # The CLI prints invite links, and only the running bot can learn its username.
        await set_value(session, key=BOT_USERNAME, value=me.username)
    await publish_menus(application)
    sender = OutboxSender(application.bot, application.deps.sessionmaker, rate=application.deps.settings.outbox_rate)
    application.deps.extra["sender"] = sender
    if application.deps.extra.get("background", True):
        sender.start()
        schedule_jobs(application)
        # The imports leave about a million long-lived objects; without this every full garbage
        # collection walks them all and stalls the event loop for 100-250 ms (bench/reporting.py).
        gc.freeze()


async def post_shutdown(application: ClusterApplication) -> None:
    sender = application.deps.extra.get("sender")
    if sender is not None:
        await sender.stop()
    engine = application.deps.extra.get("engine")
    if engine is not None:
        await engine.dispose()


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
    rate_limiter: bool = True,
    background: bool = True,
) -> ClusterApplication:
    engine = create_engine(settings.database_url)
    deps = Deps(settings=settings, sessionmaker=create_sessionmaker(engine), extra={"engine": engine, "background": background})
    builder = (
        ApplicationBuilder()
        .application_class(ClusterApplication)
        .token(settings.bot_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=settings.zone))
        .context_types(ContextTypes(context=ClusterContext))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .concurrent_updates(PerUserUpdateProcessor(64))
    )
    if rate_limiter:
        # Replies to people's own actions: no overall cap (bulk sends are paced by the outbox
        # sender, on a bot of its own), but group chats keep Telegram's 20 a minute and a 429 is
        # waited out and retried.
        builder = builder.rate_limiter(AIORateLimiter(overall_max_rate=0, max_retries=3))
    builder = builder.request(request or AiohttpRequest()).get_updates_request(
        updates_request or AiohttpRequest(connection_pool_size=1)
    )
    application: ClusterApplication = builder.build()
    application.deps = deps
    add_handlers(application)
    return application
