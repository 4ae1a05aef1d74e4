"""Drains the outbox within Telegram's limits and records what happened to every message."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import timedelta

from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.db import SessionMaker
from bot.services import outbox
from models import OutboxMessage

log = logging.getLogger(__name__)

UNREACHABLE_HINTS = ("chat not found", "user is deactivated", "bot was blocked", "bot was kicked", "peer_id_invalid")


class OutboxSender:
    def __init__(
        self,
        bot,
        sessionmaker: SessionMaker,
        *,
        rate: float = 30.0,
        per_chat_interval: float = 1.0,
        max_attempts: int = 5,
        batch: int = 10,
    ) -> None:
        self.bot, self.sessionmaker = bot, sessionmaker
        self.interval = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self.max_attempts, self.batch = max_attempts, batch
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_by_chat: dict[int, float] = {}

    def notify(self) -> None:
        """New rows were queued: stop idling."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        async with self.sessionmaker() as session:
            # A worker killed mid-send leaves rows claimed; a lease of a minute gives them back.
            await outbox.release_stale_claims(session, older_than=timedelta(minutes=1))
        while True:
            try:
                sent = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep draining whatever one bad batch did
                log.exception("Outbox batch failed")
                sent = 0
            if not sent:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass

    async def drain_once(self) -> int:
        async with self.sessionmaker() as session:
            rows = await outbox.claim(session, worker=self.worker, limit=self.batch)
        for row in rows:
            await self._send(row)
        return len(rows)

    async def drain(self) -> None:
        """Send everything that is due now (used by tests and the CLI)."""
        while await self.drain_once():
            pass

    async def _pace(self, chat_id: int) -> None:
        now = time.monotonic()
        wait = max(self._next_slot, self._paused_until, self._last_by_chat.get(chat_id, 0.0) + self.per_chat_interval) - now
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.monotonic()
        self._next_slot = now + self.interval
        self._last_by_chat[chat_id] = now
        if len(self._last_by_chat) > 10_000:
            self._last_by_chat = {k: v for k, v in self._last_by_chat.items() if v > now - self.per_chat_interval}

    async def _send(self, row: OutboxMessage) -> None:
        await self._pace(row.chat_id)
        markup = InlineKeyboardMarkup.de_json(row.reply_markup, self.bot) if row.reply_markup else None
        try:
            message = await self.bot.send_message(row.chat_id, row.text, reply_markup=markup)
        except RetryAfter as error:
            delay = error.retry_after.total_seconds() if isinstance(error.retry_after, timedelta) else float(error.retry_after)
            self._paused_until = time.monotonic() + delay
            log.warning("Telegram asked to slow down for %ss", delay)
            await self._record(outbox.mark_retry, message_id=row.id, error=str(error), delay=delay, max_attempts=self.max_attempts + 1)
        except Forbidden as error:
            await self._record(outbox.mark_unreachable, message_id=row.id, chat_id=row.chat_id, error=str(error))
        except BadRequest as error:
            if any(hint in str(error).lower() for hint in UNREACHABLE_HINTS):
                await self._record(outbox.mark_unreachable, message_id=row.id, chat_id=row.chat_id, error=str(error))
            else:
                await self._record(outbox.mark_retry, message_id=row.id, error=str(error), delay=0, max_attempts=1)
        except (TimedOut, NetworkError) as error:
            await self._record(
                outbox.mark_retry, message_id=row.id, error=str(error),
                delay=min(300, 2 ** (row.attempts + 1)), max_attempts=self.max_attempts,
            )
        else:
            await self._record(outbox.mark_sent, message_id=row.id, telegram_message_id=message.message_id)

    async def _record(self, action, **kwargs) -> None:
        async with self.sessionmaker() as session:
            await action(session, **kwargs)
