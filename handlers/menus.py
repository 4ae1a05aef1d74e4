"""Command menus (setMyCommands): per language by default, per chat for CDAs and for users who
picked a language their Telegram app does not report."""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError
from telegram.ext import Application, ExtBot

from bot.commands import CDA_COMMANDS, COORDINATOR_COMMANDS, STAKEHOLDER_COMMANDS
from bot.i18n import Translator
from bot.languages import LANGUAGES
from bot.services.clusters import cda_user_ids
from bot.services.stakeholders import get_stakeholder, preferred_language

log = logging.getLogger(__name__)


def _commands(language: str, *, cda: bool, coordinator: bool = False) -> list[BotCommand]:
    t = Translator(language)
    extra = CDA_COMMANDS if cda else (COORDINATOR_COMMANDS if coordinator else ())
    entries = STAKEHOLDER_COMMANDS + extra
    return [BotCommand(name, t(description)) for name, description in entries]


async def set_chat_menu(bot: ExtBot, user_id: int, language: str, *, cda: bool, coordinator: bool = False) -> None:
    try:
        await bot.set_my_commands(_commands(language, cda=cda, coordinator=coordinator), scope=BotCommandScopeChat(user_id))
    except TelegramError as error:
        # A CDA listed in the settings who never opened the bot has no chat yet.
        log.warning("Could not set the command menu for %s: %s", user_id, error)


async def commands_changed(bot: ExtBot, context, user_id: int) -> None:
    """After a registration or a language change, show this user's menu in their language."""
    await set_chat_menu(bot, user_id, context.language, cda=context.is_cda, coordinator=context.is_coordinator)


async def clear_chat_menu(bot: ExtBot, user_id: int) -> None:
    try:
        await bot.delete_my_commands(scope=BotCommandScopeChat(user_id))
    except TelegramError as error:
        log.warning("Could not clear the command menu for %s: %s", user_id, error)


async def publish_menus(application: Application) -> None:
    bot, deps = application.bot, application.deps  # type: ignore[attr-defined]
    settings = deps.settings
    await bot.set_my_commands(_commands(settings.default_language, cda=False), scope=BotCommandScopeDefault())
    for language in LANGUAGES:
        await bot.set_my_commands(
            _commands(language, cda=False), scope=BotCommandScopeDefault(), language_code=language
        )
    async with deps.sessionmaker() as session:
        cdas = set(settings.cda_user_ids) | await cda_user_ids(session)
        for user_id in sorted(cdas):
            stakeholder = await get_stakeholder(session, telegram_user_id=user_id)
            language = (
                stakeholder.language if stakeholder else await preferred_language(session, telegram_user_id=user_id)
            ) or settings.default_language
            await set_chat_menu(bot, user_id, language, cda=True)
