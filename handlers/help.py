"""/help: what this user's role can do, in their language."""

from __future__ import annotations

from html import escape

from telegram import Update
from telegram.ext import CommandHandler, filters

from bot.commands import CDA_COMMANDS, COORDINATOR_COMMANDS, STAKEHOLDER_COMMANDS
from bot.context import ClusterContext
from handlers.common import send


def help_text(context: ClusterContext) -> str:
    t = context.t
    lines = []
    if context.stakeholder is not None:
        lines.append(t("What you can do:"))
        lines += [f"/{name} — {escape(t(description))}" for name, description in STAKEHOLDER_COMMANDS]
    else:
        lines.append(t("To join your cluster, open the invite link your CDA shared with you."))
        lines += [
            f"/{name} — {escape(t(description))}"
            for name, description in STAKEHOLDER_COMMANDS
            if name in ("language", "help", "mydata", "forget", "cancel")
        ]
    if context.is_cda:
        lines += ["", t("As a CDA you can also use:")]
        lines += [f"/{name} — {escape(t(description))}" for name, description in CDA_COMMANDS]
    elif context.is_coordinator:
        lines += ["", t("As the coordinator of an activity you can also use:")]
        lines += [f"/{name} — {escape(t(description))}" for name, description in COORDINATOR_COMMANDS]
    return "\n".join(lines)


async def show_help(update: Update, context: ClusterContext) -> None:
    await send(update, help_text(context))


HANDLERS = [CommandHandler("help", show_help, filters=filters.ChatType.PRIVATE)]
