"""my_chat_member updates: a user who blocks or unblocks the bot.

Telegram sends one when a user blocks the bot (our member status becomes "kicked") and again
when they unblock or restart it ("member"). The stakeholder becomes unreachable -- skipped by
every later send, with what is still queued to them skipped now -- or active again.
"""

from __future__ import annotations

from telegram import ChatMember, Update
from telegram.constants import ChatType
from telegram.ext import ChatMemberHandler

from bot.context import ClusterContext
from bot.services import outbox


async def on_my_chat_member(update: Update, context: ClusterContext) -> None:
    change = update.my_chat_member
    if change is None or change.chat.type != ChatType.PRIVATE:
        return
    status = change.new_chat_member.status
    if status in (ChatMember.BANNED, ChatMember.LEFT):
        reachable = False
    elif status in (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER):
        reachable = True
    else:
        return
    async with context.session() as session:
        await outbox.set_reachable(session, chat_id=change.chat.id, reachable=reachable)


HANDLERS = [ChatMemberHandler(on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)]
