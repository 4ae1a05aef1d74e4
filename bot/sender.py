"""Drains the outbox within Telegram's limits and records what happened to every message.

Pacing, all decided here (the sender's Bot has no rate limiter of its own, see ``bulk_bot``):

* overall: requests are spaced ``1 / rate`` seconds apart (a turn taken a little late is made up
  on the next one), and a request may only go out while fewer than ``rate`` requests are on
  their way or were answered less than a second ago. Telegram stamps a request somewhere between
  our sending it and our getting its answer, so counting from the answer guarantees that no
  second of Telegram's clock holds more than ``rate`` of ours, however unevenly the network or a
  busy machine delays requests: ``rate`` may be set to the limit itself;
* per chat: a private chat gets its next message one second after the previous one was answered,
  a group (negative chat id) three seconds after, which keeps it under 20 a minute;
* a 429 pauses every send for ``retry_after`` and requeues that message without using one of its
  attempts; timeouts, network errors and 5xx retry with exponential backoff and fail after
  ``max_attempts`` with the reason kept; 403 and "chat not found" mark the recipient unreachable
  and skip everything still queued to them, never retrying.

The pace is per process. Several processes may drain one outbox (they never take the same row),
but each keeps its own pace, so give each ``OUTBOX_RATE`` = Telegram's limit / processes.

Exactly once. A row is claimed (``queued`` -> ``sending``, committed) just before its request
goes out, and its result is committed as soon as Telegram answers, one row at a time. A crash
therefore leaves at most the rows that were in flight in ``sending`` (at most ``concurrency``,
in practice one or two). On restart such rows are given back to the queue and sent: rows of a
worker on this host whose process is gone are released at once; rows of another host's worker
after ``lease`` (longer than any live worker holds a row: the HTTP timeouts are far shorter).

The residual window, which no Bot API client can close (Telegram has no idempotency key): if
the process dies after Telegram accepted a message but before ``mark_sent`` committed -- the
response's trip back plus one UPDATE, a few milliseconds per message -- that message is sent
again after the restart. The same holds for a read timeout, where the request may have arrived.
A crash anywhere else (while claiming, waiting for a turn, or recording a result) repeats and
loses nothing. We chose "at least once" for that window: a notice seen twice is better than a
meeting notice never seen.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import socket
import time
import warnings
from collections import Counter, deque
from datetime import timedelta

from telegram import InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ExtBot

from bot.db import SessionMaker
from bot.services import broadcasts, outbox
from models import OutboxMessage
from models.base import utcnow

log = logging.getLogger(__name__)

UNREACHABLE_HINTS = ("chat not found", "user is deactivated", "bot was blocked", "bot was kicked", "peer_id_invalid")
# Results of these purposes change what a broadcast's progress message says.
PROGRESS_PURPOSES = frozenset({broadcasts.PURPOSE, broadcasts.PROGRESS_PURPOSE})

# Telegram counts messages per second (a few milliseconds more for clock granularity).
WINDOW = 1.002
# Senders running in this process, so that recovery never takes rows from a live one.
LIVE_WORKERS: set[str] = set()


def _host() -> str:
    # The pid namespace tells containers that share a host name apart.
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()[:24]}/{namespace}"


HOST = _host()


def worker_is_dead(worker: str) -> bool:
    """Whether the worker that claimed a row is known to be gone (same host, no such process)."""
    if worker in LIVE_WORKERS:
        return False
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        # This pid, but not a live sender of ours: an earlier life of a restarted container.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def bulk_bot(bot):
    """A Bot for bulk sends that shares the application's connection and defaults but not its
    rate limiter: PTB's AIORateLimiter would queue users' replies behind a broadcast and retry 429s
    on its own, while the outbox must own the pacing and the 429 handling of what it sends."""
    if getattr(bot, "rate_limiter", None) is None:
        return bot
    base_url, base_file_url = bot.base_url, bot.base_file_url
    return ExtBot(
        bot.token,
        base_url=lambda _token: base_url,
        base_file_url=lambda _token: base_file_url,
        request=bot.request,
        get_updates_request=bot.request,
        defaults=bot.defaults,
        local_mode=bot.local_mode,
    )


def _retry_after(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after will become a timedelta; both are handled here.
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def refresh_broadcast_progress(bot, sessionmaker: SessionMaker) -> int:
    """Finish broadcasts with nothing left to send, then edit each running (or just finished)
    broadcast's progress message in place. Returns how many finished (their summaries are queued)."""
    async with sessionmaker() as session:
        finished = await broadcasts.finish_completed(session)
        views = await broadcasts.progress_views(session, also=finished)
    for view in views:
        try:
            await bot.edit_message_text(view.text, chat_id=view.chat_id, message_id=view.message_id)
        except BadRequest as error:
            # "message is not modified" when nothing moved since the last edit; a deleted
            # progress message is the CDA's choice. Either way the summary still arrives.
            if "not modified" not in str(error).lower():
                log.info("Could not update broadcast %s progress: %s", view.broadcast_id, error)
        except TelegramError as error:
            log.warning("Could not update broadcast %s progress: %s", view.broadcast_id, error)
    return len(finished)


class OutboxSender:
    def __init__(
        self,
        bot,
        sessionmaker: SessionMaker,
        *,
        rate: float = 28.0,
        per_chat_interval: float = 1.0,
        group_interval: float = 3.0,
        max_attempts: int = 5,
        retry_base: float = 2.0,
        max_backoff: float = 300.0,
        concurrency: int = 16,
        lease: timedelta = timedelta(minutes=2),
        progress_interval: float = 2.0,
    ) -> None:
        self.bot, self.sessionmaker = bulk_bot(bot), sessionmaker
        self.interval = 1.0 / rate
        self.tolerance = min(0.002, self.interval / 4)
        # The overall limit as tokens: one is held from a request's start until a second after
        # its answer (``_released`` holds those times, in order).
        self._tokens = max(1, int(rate))
        self._requests_out = 0
        self._released: deque[float] = deque()
        self.per_chat_interval, self.group_interval = per_chat_interval, group_interval
        self.max_attempts, self.retry_base, self.max_backoff = max_attempts, retry_base, max_backoff
        self.lease, self.progress_interval = lease, progress_interval
        self.worker = f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stats: Counter[str] = Counter()
        self._concurrency = concurrency
        self._capacity: asyncio.Semaphore | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._tat = 0.0
        self._paused_until = 0.0
        self._chat_free_at: dict[int, float] = {}
        self._busy_chats: set[int] = set()
        self._progress_dirty = True
        self._progress_checked = 0.0
        self._recovered_at = 0.0
        LIVE_WORKERS.add(self.worker)

    # ------------------------------------------------------------------ lifecycle

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
        if self._inflight:
            # Let requests already made record their results rather than strand them in "sending".
            await asyncio.wait(self._inflight, timeout=15)
        if not self._inflight:
            # What is left is the row claimed for the next turn, never sent: back to the queue.
            # (A request still unanswered is left to recovery, like after a crash.)
            async with self.sessionmaker() as session:
                await outbox.release_claims(session, workers=[self.worker])
        LIVE_WORKERS.discard(self.worker)

    async def recover(self) -> int:
        """Requeue rows left ``sending`` by dead workers (at once) or held beyond the lease."""
        self._recovered_at = time.monotonic()
        async with self.sessionmaker() as session:
            dead = [worker for worker in await outbox.claimed_workers(session) if worker_is_dead(worker)]
            released = await outbox.release_claims(session, workers=dead)
            released += await outbox.release_stale_claims(session, older_than=self.lease)
        if released:
            log.warning("Requeued %s outbox messages left unfinished by a stopped sender", released)
        return released

    async def drain(self) -> None:
        """Send everything that is due now (tests, the CLI), finishing broadcasts on the way."""
        await self.recover()
        await self._dispatch(until_idle=True)

    async def _run(self) -> None:
        progress = asyncio.create_task(self._progress_loop(), name="outbox-progress")
        try:
            while True:
                try:
                    if not self._recovered_at:
                        await self.recover()
                    await self._dispatch(until_idle=False)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a database hiccup must not end the sender
                    log.exception("Outbox sender failed; retrying in a second")
                    await asyncio.sleep(1)
        finally:
            progress.cancel()

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            try:
                await self._refresh_progress(force=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Broadcast progress update failed")

    async def _refresh_progress(self, *, force: bool) -> int:
        # Edits are throttled to one per progress_interval; every 30 s we look anyway, so a
        # broadcast whose last row another process sent (or a crash interrupted) still finishes.
        now = time.monotonic()
        if not (force or self._progress_dirty or now - self._progress_checked > 30):
            return 0
        self._progress_dirty, self._progress_checked = False, now
        finished = await refresh_broadcast_progress(self.bot, self.sessionmaker)
        if finished:
            self.notify()
        return finished

    # ------------------------------------------------------------------ dispatching

    async def _dispatch(self, *, until_idle: bool) -> None:
        if self._capacity is None:
            self._capacity = asyncio.Semaphore(self._concurrency)
        while True:
            await self._capacity.acquire()
            try:
                row = await self._claim()
                if row is not None and self._paused_until - time.monotonic() > 1.0:
                    # A 429 came in meanwhile: do not hold the row through a long pause.
                    await self._unclaim(row)
                    row = None
                if row is not None:
                    await self._wait_for_turn(row.chat_id)
            except BaseException:
                self._capacity.release()
                raise
            if row is None:
                self._capacity.release()
                if await self._idle(until_idle):
                    return
                continue
            self._take_turn(row.chat_id)
            task = asyncio.create_task(self._deliver(row))
            self._inflight.add(task)
            task.add_done_callback(self._delivered)
            # Let the request start now: the turn was taken for this moment.
            await asyncio.sleep(0)

    def _delivered(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        self._capacity.release()
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("Outbox delivery crashed", exc_info=task.exception())

    def _held_chats(self) -> set[int]:
        now = time.monotonic()
        if len(self._chat_free_at) > 5_000:
            self._chat_free_at = {chat: at for chat, at in self._chat_free_at.items() if at > now}
        return self._busy_chats | {chat for chat, at in self._chat_free_at.items() if at > now + self.interval}

    async def _claim(self) -> OutboxMessage | None:
        # Claim half a slot ahead: a row never waits long in "sending", and the claim's database
        # work falls between two requests instead of delaying the one just let through.
        wait = max(self._paused_until, self._tat - self.interval / 2) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        async with self.sessionmaker() as session:
            return await outbox.claim_next(session, worker=self.worker, exclude_chat_ids=self._held_chats())

    async def _unclaim(self, row: OutboxMessage) -> None:
        async with self.sessionmaker() as session:
            await outbox.unclaim(session, message_id=row.id, worker=self.worker)

    def _token_free_at(self, now: float) -> float:
        while self._released and self._released[0] <= now:
            self._released.popleft()
        if self._requests_out + len(self._released) < self._tokens:
            return now
        if self._released and self._requests_out < self._tokens:
            return self._released[0]
        return now + 0.005  # every token is on a request still under way: wait for an answer

    async def _wait_for_turn(self, chat_id: int) -> None:
        while True:
            now = time.monotonic()
            ready = max(
                self._paused_until, self._tat - self.tolerance, self._token_free_at(now), self._chat_free_at.get(chat_id, 0.0)
            )
            if ready <= now:
                return
            await asyncio.sleep(ready - now)

    def _take_turn(self, chat_id: int) -> None:
        now = time.monotonic()
        # A turn taken late by less than half a slot (a slow claim, a busy loop) is made up on
        # the next one; the tokens still bound any catching up.
        self._tat = max(self._tat, now - self.interval / 2) + self.interval
        self._requests_out += 1
        self._busy_chats.add(chat_id)

    async def _idle(self, until_idle: bool) -> bool:
        """Nothing claimable right now. True when a drain is complete."""
        if until_idle:
            if self._inflight:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                return False
            if await self._refresh_progress(force=True):
                return False
            async with self.sessionmaker() as session:
                due = await outbox.has_due(session)
            if not due:
                return True
            # Only chats that must wait for their turn have something due.
            await asyncio.sleep(self._until_a_chat_frees())
            return False
        if time.monotonic() - self._recovered_at > self.lease.total_seconds() / 4:
            await self.recover()
        async with self.sessionmaker() as session:
            due_at = await outbox.next_due_at(session)
        timeout = 1.0
        if due_at is not None:
            timeout = min(timeout, max(0.0, (due_at - utcnow()).total_seconds()))
            timeout = max(timeout, min(1.0, self._until_a_chat_frees()))
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        except TimeoutError:
            pass
        return False

    def _until_a_chat_frees(self) -> float:
        now = time.monotonic()
        waiting = [at - now for at in self._chat_free_at.values() if at > now]
        return max(0.01, min(waiting, default=0.05))

    # ------------------------------------------------------------------ one message

    async def _deliver(self, row: OutboxMessage) -> None:
        try:
            message, error = await self._request(row)
        finally:
            # The token and the chat are freed from the answer's arrival: see the module doc.
            now = time.monotonic()
            self._requests_out -= 1
            self._released.append(now + WINDOW)
            gap = self.group_interval if row.chat_id < 0 else self.per_chat_interval
            self._chat_free_at[row.chat_id] = now + gap
            self._busy_chats.discard(row.chat_id)
        await self._settle(row, message, error)
        if row.purpose in PROGRESS_PURPOSES:
            self._progress_dirty = True

    async def _request(self, row: OutboxMessage):
        try:
            markup = InlineKeyboardMarkup.de_json(row.reply_markup, self.bot) if row.reply_markup else None
            if row.attachment:
                document = InputFile(base64.b64decode(row.attachment["content_b64"]), filename=row.attachment["filename"])
                return await self.bot.send_document(row.chat_id, document, caption=row.text, reply_markup=markup), None
            return await self.bot.send_message(row.chat_id, row.text, reply_markup=markup), None
        except Exception as error:
            return None, error

    async def _settle(self, row: OutboxMessage, message, error: Exception | None) -> None:
        """Commit what Telegram said, at once: the sooner, the smaller the window in the doc."""
        if error is None:
            self.stats["sent"] += 1
            await self._record(outbox.mark_sent, message_id=row.id, telegram_message_id=message.message_id)
        elif isinstance(error, RetryAfter):
            delay = _retry_after(error)
            self._paused_until = max(self._paused_until, time.monotonic() + delay)
            self.stats["rate_limited"] += 1
            log.warning("Telegram asked to slow down for %ss", delay)
            await self._record(
                outbox.mark_retry, message_id=row.id, error=str(error), delay=delay,
                max_attempts=self.max_attempts, count_attempt=False,
            )
        elif isinstance(error, Forbidden) or (
            isinstance(error, BadRequest) and any(hint in str(error).lower() for hint in UNREACHABLE_HINTS)
        ):
            await self._unreachable(row, error)
        elif isinstance(error, BadRequest):
            self.stats["failed"] += 1
            await self._record(outbox.mark_failed, message_id=row.id, error=str(error))
        else:
            # Timeouts, network errors, 5xx and other Telegram errors; anything else (a malformed
            # stored keyboard, a bug) is bounded the same way and logged.
            if not isinstance(error, (TimedOut, NetworkError, TelegramError)):
                log.error("Unexpected error sending outbox message %s", row.id, exc_info=error)
            await self._retry(row, error)

    async def _unreachable(self, row: OutboxMessage, error: Exception) -> None:
        self.stats["unreachable"] += 1
        await self._record(outbox.mark_unreachable, message_id=row.id, chat_id=row.chat_id, error=str(error))

    async def _retry(self, row: OutboxMessage, error: Exception) -> None:
        delay = min(self.max_backoff, self.retry_base * 2**row.attempts)
        requeued = await self._record(
            outbox.mark_retry, message_id=row.id, error=str(error) or type(error).__name__,
            delay=delay, max_attempts=self.max_attempts,
        )
        self.stats["retried" if requeued else "failed"] += 1

    async def _record(self, action, **kwargs):
        # The message is out; losing its result would send it again after the lease, so a
        # database hiccup here is worth a few quick retries.
        for attempt in range(4):
            try:
                async with self.sessionmaker() as session:
                    return await action(session, **kwargs)
            except Exception:
                if attempt == 3:
                    raise
                log.warning("Recording an outbox result failed; retrying", exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)
        return None
