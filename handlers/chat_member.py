"""my_chat_member updates: a user who blocks or unblocks the bot."""

from __future__ import annotations

HANDLERS: list = []
