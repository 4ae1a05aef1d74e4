"""The baseline for bench.survey_answers: a bare python-telegram-bot bot that only replies.

It polls the same Bot API stand-in with the same polling settings as ``python -m bot run`` (the
same poll interval and ``allowed_updates``) and runs up to 64 updates at once, like the Cluster
Bot's ``PerUserUpdateProcessor(64)``. Its transport is PTB's default (httpx). It answers every callback query and replies to
every update with one message carrying a question-like inline keyboard (five range buttons and
Back), so the load generator can drive it with exactly the protocol it uses for the real bot.

Configured from the environment like the real bot: BOT_TOKEN, TELEGRAM_BASE_URL,
TELEGRAM_BASE_FILE_URL. Diagnostics, off by default: ``BARE_RATE_LIMITER=1`` adds the same
``AIORateLimiter(max_retries=3)`` the Cluster Bot uses; ``BARE_AIOHTTP=1`` gives it the Cluster
Bot's aiohttp transport (``bot/http.py``).

    python -m bench.bare_bot
"""

from __future__ import annotations

import logging
import os

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]  # as bot/cli.py
POLL_INTERVAL = 0.05  # as bot/cli.py


def _markup(step: int) -> InlineKeyboardMarkup:
    # The same shape as a range question of the real bot: sva:<response>:<question>:<action>.
    buttons = [
        InlineKeyboardButton(str(v), callback_data=f"sva:0:q{step}:r{v}") for v in range(1, 6)
    ]
    return InlineKeyboardMarkup(
        [buttons, [InlineKeyboardButton("◀ Back", callback_data=f"sva:0:q{step}:back")]]
    )


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer()
    await _reply(update, context)


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _reply(update, context)


async def _reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    step = context.user_data["step"] = context.user_data.get("step", 0) + 1
    await update.effective_chat.send_message(
        f"<b>{step}</b>\nHow would you rate question {step}?\n<i>1 = poor, 5 = very good</i>",
        parse_mode="HTML",
        reply_markup=_markup(step),
    )


def main() -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    builder = (
        ApplicationBuilder()
        .token(os.environ["BOT_TOKEN"])
        .base_url(os.environ.get("TELEGRAM_BASE_URL", "https://api.telegram.org/bot"))
        .base_file_url(
            os.environ.get("TELEGRAM_BASE_FILE_URL", "https://api.telegram.org/file/bot")
        )
        .concurrent_updates(64)
    )
    if os.environ.get("BARE_RATE_LIMITER") == "1":
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    if os.environ.get("BARE_AIOHTTP") == "1":
        from bot.http import AiohttpRequest

        builder = builder.request(AiohttpRequest()).get_updates_request(
            AiohttpRequest(connection_pool_size=1)
        )
    application = builder.build()
    application.add_handler(CallbackQueryHandler(on_callback))
    application.add_handler(MessageHandler(filters.ALL, on_message))
    application.run_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=POLL_INTERVAL)


if __name__ == "__main__":
    main()
