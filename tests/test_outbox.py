"""The outbox and its sender: pacing, 429 / 403 / timeouts, two senders at once, crash and restart,
and my_chat_member blocking and unblocking."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select
from telegram import Update

from bot.app import build_application, post_init
from bot.db import create_engine, create_sessionmaker
from bot.sender import HOST, LIVE_WORKERS, OutboxSender
from bot.services import outbox
from bot.services.outbox import Draft
from models import OutboxMessage, OutboxStatus
from models.base import utcnow
from models.stakeholder import StakeholderStatus
from tests.botapi import ApiError, FakeBotApi, RecordingRequest, recording_bot
from tests.conftest import start_app, stop_app
from tests.helpers import make_cluster, stakeholder_of
from tests.survey_helpers import add_member

BASE = 700_000_000


async def queue(sessionmaker, chats, *, purpose="test", stakeholder_ids=None, prefix="m"):
    drafts = [
        Draft(chat_id=chat, text=f"hello {n}", purpose=purpose, dedupe_key=f"{prefix}:{n}",
              stakeholder_id=(stakeholder_ids or {}).get(chat))
        for n, chat in enumerate(chats)
    ]
    async with sessionmaker() as session:
        return await outbox.enqueue(session, drafts=drafts)


async def rows(sessionmaker) -> list[OutboxMessage]:
    async with sessionmaker() as session:
        return list((await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


def sender_for(api: FakeBotApi, sessionmaker, *, read_timeout: float = 5.0, **kwargs) -> OutboxSender:
    bot = recording_bot(api) if read_timeout == 5.0 else _bot_with_timeout(api, read_timeout)
    return OutboxSender(bot, sessionmaker, **kwargs)


def _bot_with_timeout(api: FakeBotApi, read_timeout: float):
    from telegram import Bot

    return Bot(api.token, request=RecordingRequest(api, read_timeout=read_timeout), get_updates_request=RecordingRequest(api))


def send_times(api: FakeBotApi, chat=None) -> list[float]:
    return [call.time for call in api.sent(chat)]


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_sender_keeps_overall_and_per_chat_pace(sessionmaker):
    api = FakeBotApi(global_rate_limit=20, per_chat_rate_limit=1)
    one = BASE + 1
    await queue(sessionmaker, [one, one, one] + [BASE + 100 + n for n in range(30)])
    sender = sender_for(api, sessionmaker, rate=20)
    await sender.drain()

    assert not [call for call in api.calls if call.status == 429]
    assert len(api.sent()) == 33
    assert max_in_window(send_times(api)) <= 20
    times = send_times(api, one)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 1.0
    assert {row.status for row in await rows(sessionmaker)} == {OutboxStatus.SENT}


async def test_group_chats_get_one_message_per_interval(sessionmaker):
    api = FakeBotApi()
    group, private = -BASE - 5, BASE + 5
    await queue(sessionmaker, [group, group, private, private])
    # Scaled-down intervals keep the test fast; the defaults are 3 s (20 a minute) and 1 s.
    sender = sender_for(api, sessionmaker, rate=50, group_interval=0.6, per_chat_interval=0.2)
    assert OutboxSender(None, sessionmaker).group_interval * 20 == 60
    await sender.drain()

    group_times, private_times = send_times(api, group), send_times(api, private)
    assert group_times[1] - group_times[0] >= 0.6
    assert 0.2 <= private_times[1] - private_times[0] < 0.6


async def test_429_pauses_everything_for_retry_after(sessionmaker):
    # The sender is set faster than the stand-in allows, so Telegram's 429 is what slows it.
    api = FakeBotApi(global_rate_limit=4)
    chats = [BASE + 200 + n for n in range(10)]
    await queue(sessionmaker, chats)
    sender = sender_for(api, sessionmaker, rate=100, max_attempts=2)
    await sender.drain()

    limited = [call for call in api.calls if call.status == 429]
    assert limited and sender.stats["rate_limited"] == len(limited)
    for call in limited:
        retry_after = call.response["parameters"]["retry_after"]
        later = [c.time for c in api.calls if c.method == "sendMessage" and c.time > call.time]
        assert all(moment >= call.time + retry_after - 0.05 for moment in later)
    # Every message went out once, and waiting on Telegram did not use up any attempt.
    assert sorted(call.params["chat_id"] for call in api.sent()) == chats
    assert all(row.status == OutboxStatus.SENT and row.attempts == 1 for row in await rows(sessionmaker))


async def test_blocked_and_missing_chats_mark_stakeholders_unreachable(sessionmaker):
    cluster = await make_cluster(sessionmaker)
    blocked = await add_member(sessionmaker, cluster, BASE + 11, "Blocked", "hi")
    gone = await add_member(sessionmaker, cluster, BASE + 12, "Gone", "ta")
    fine = await add_member(sessionmaker, cluster, BASE + 13, "Fine", "en")
    ids = {member.chat_id: member.id for member in (blocked, gone, fine)}
    api = FakeBotApi(blocked_chat_ids={blocked.chat_id}, missing_chat_ids={gone.chat_id})
    await queue(sessionmaker, [blocked.chat_id, blocked.chat_id, gone.chat_id, fine.chat_id], stakeholder_ids=ids)
    await sender_for(api, sessionmaker, rate=50).drain()

    # One try each, never retried; the second message to the blocked user is skipped unsent.
    assert len(api.sent(blocked.chat_id, include_failed=True)) == 1
    assert len(api.sent(gone.chat_id, include_failed=True)) == 1
    by_chat = {}
    for row in await rows(sessionmaker):
        by_chat.setdefault(row.chat_id, []).append(row)
    assert [r.status for r in by_chat[blocked.chat_id]] == [OutboxStatus.SKIPPED] * 2
    assert "blocked" in by_chat[blocked.chat_id][0].last_error
    assert by_chat[gone.chat_id][0].status == OutboxStatus.SKIPPED
    assert by_chat[fine.chat_id][0].status == OutboxStatus.SENT
    for user_id, status in ((BASE + 11, StakeholderStatus.UNREACHABLE), (BASE + 12, StakeholderStatus.UNREACHABLE), (BASE + 13, StakeholderStatus.ACTIVE)):
        assert (await stakeholder_of(sessionmaker, user_id)).status == status

    # Later sends skip them without asking Telegram at all.
    calls_before = len(api.calls)
    await queue(sessionmaker, [blocked.chat_id, fine.chat_id], stakeholder_ids=ids, prefix="later")
    await sender_for(api, sessionmaker, rate=50).drain()
    assert [call.params["chat_id"] for call in api.calls[calls_before:]] == [fine.chat_id]
    assert (await rows(sessionmaker))[-2].status == OutboxStatus.SKIPPED


async def test_timeouts_retry_with_backoff_and_fail_after_bounded_attempts(sessionmaker):
    api = FakeBotApi()

    async def hang(params, files):
        await asyncio.sleep(0.3)

    api.on("sendMessage", hang)
    await queue(sessionmaker, [BASE + 21])
    sender = sender_for(api, sessionmaker, read_timeout=0.05, rate=50, retry_base=2.0)
    await sender.drain()
    (row,) = await rows(sessionmaker)
    # Backed off: queued again, two seconds out, the reason kept.
    assert row.status == OutboxStatus.QUEUED and row.attempts == 1
    assert "timed out" in row.last_error.lower() or "did not answer" in row.last_error
    assert (row.not_before.replace(tzinfo=None) - utcnow().replace(tzinfo=None)) > timedelta(seconds=1.5)

    # With no backoff the attempts run out at once: failed for good, reason kept.
    fast = sender_for(api, sessionmaker, read_timeout=0.05, rate=50, retry_base=0.0, max_attempts=3)
    async with sessionmaker() as session:
        await session.exec(update(OutboxMessage).values(not_before=utcnow()))
        await session.commit()
    await fast.drain()
    (row,) = await rows(sessionmaker)
    assert row.status == OutboxStatus.FAILED and row.attempts == 3 and row.last_error


async def test_server_errors_retry_then_succeed_and_bad_requests_fail_at_once(sessionmaker):
    api = FakeBotApi()
    calls = {"n": 0}

    def flaky(params, files):
        if params["chat_id"] == BASE + 31:
            raise ApiError(400, "Bad Request: can't parse entities: unsupported start tag \"div\"")
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ApiError(502, "Bad Gateway")
        return api._send_message(params, files)

    api.on("sendMessage", flaky)
    await queue(sessionmaker, [BASE + 30, BASE + 31])
    await sender_for(api, sessionmaker, rate=50, retry_base=0.0, per_chat_interval=0.1).drain()
    ok, bad = await rows(sessionmaker)
    assert ok.status == OutboxStatus.SENT and ok.attempts == 3 and ok.last_error == "Bad Gateway"
    assert bad.status == OutboxStatus.FAILED and bad.attempts == 1 and "parse entities" in bad.last_error
    assert len(api.sent(BASE + 31, include_failed=True)) == 1


async def test_two_claimers_never_take_the_same_row(sessionmaker, database_url):
    """Many concurrent claims from two engines (two 'processes'): every row exactly once."""
    await queue(sessionmaker, [BASE + 1000 + n for n in range(120)])
    other_engine = create_engine(database_url)
    other = create_sessionmaker(other_engine)
    taken: list[int] = []

    async def claimer(maker, name):
        while True:
            async with maker() as session:
                row = await outbox.claim_next(session, worker=name)
            if row is None:
                return
            taken.append(row.id)

    try:
        await asyncio.gather(*(claimer(maker, f"w{n}") for n, maker in enumerate([sessionmaker, other] * 4)))
    finally:
        await other_engine.dispose()
    assert len(taken) == 120 and len(set(taken)) == 120


async def test_two_senders_draining_one_outbox_send_nothing_twice(sessionmaker, database_url):
    api = FakeBotApi()

    async def slow(params, files):
        await asyncio.sleep(0.005)
        return api._send_message(params, files)

    api.on("sendMessage", slow)
    chats = [BASE + 2000 + n for n in range(60)]
    await queue(sessionmaker, chats)
    other_engine = create_engine(database_url)
    try:
        first = sender_for(api, sessionmaker, rate=200, concurrency=2)
        second = sender_for(api, create_sessionmaker(other_engine), rate=200, concurrency=2)
        await asyncio.gather(first.drain(), second.drain())
    finally:
        await other_engine.dispose()
    assert sorted(call.params["chat_id"] for call in api.sent()) == chats
    assert first.stats["sent"] > 0 and second.stats["sent"] > 0
    assert first.stats["sent"] + second.stats["sent"] == 60
    assert {row.status for row in await rows(sessionmaker)} == {OutboxStatus.SENT}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_restart_requeues_rows_left_sending_by_a_dead_worker(settings, api, sessionmaker):
    chats = [BASE + 3000 + n for n in range(6)]
    await queue(sessionmaker, chats)
    now = utcnow()
    claims = {
        chats[0]: (f"{HOST}:{_dead_pid()}:deadbeef", now),                     # this host, process gone
        chats[1]: (f"{HOST}:{os.getpid()}:0ldl1fe0", now),                     # this pid's earlier life
        chats[2]: ("elsewhere/1:4242:cafe0001", now - timedelta(minutes=10)),  # other host, lease over
        chats[3]: ("elsewhere/1:4242:cafe0002", now),                          # other host, maybe alive
    }
    async with sessionmaker() as session:
        for chat, (worker, at) in claims.items():
            await session.exec(
                update(OutboxMessage).where(OutboxMessage.chat_id == chat)
                .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=at)
            )
        await session.commit()

    app = await start_app(settings, api)
    try:
        await app.deps.extra["sender"].drain()
    finally:
        await stop_app(app)
    sent = sorted(call.params["chat_id"] for call in api.sent())
    # Everything once; the row a possibly-live worker on another host holds waits for its lease.
    assert sent == sorted(set(chats) - {chats[3]})
    statuses = {row.chat_id: row.status for row in await rows(sessionmaker)}
    assert statuses[chats[3]] == OutboxStatus.SENDING
    assert all(statuses[chat] == OutboxStatus.SENT for chat in set(chats) - {chats[3]})


async def test_crash_mid_drain_then_restart_sends_each_message_once(sessionmaker):
    api = FakeBotApi()
    stuck = asyncio.Event()
    count = {"n": 0}

    async def dies_on_fifth(params, files):
        count["n"] += 1
        if count["n"] >= 5:
            stuck.set()
            await asyncio.Event().wait()  # the process dies while these requests are being made
        return api._send_message(params, files)

    api.on("sendMessage", dies_on_fifth)
    chats = [BASE + 4000 + n for n in range(12)]
    await queue(sessionmaker, chats)
    crashed = sender_for(api, sessionmaker, rate=100)
    drain = asyncio.create_task(crashed.drain())
    await stuck.wait()
    while sum(row.status == OutboxStatus.SENT for row in await rows(sessionmaker)) < 4:
        await asyncio.sleep(0.01)
    # kill -9 while the fifth (and any later) request is on its way: no cleanup, no result recorded.
    drain.cancel()
    for task in list(crashed._inflight):
        task.cancel()
    await asyncio.gather(drain, *crashed._inflight, return_exceptions=True)
    LIVE_WORKERS.discard(crashed.worker)
    # A killed process takes its database connections with it; here a connection abandoned by a
    # cancelled task is only closed when it is collected, and until then may hold SQLite's lock.
    gc.collect()
    assert OutboxStatus.SENDING in {row.status for row in await rows(sessionmaker)}

    api.on("sendMessage", None)
    restarted = sender_for(api, sessionmaker, rate=100)
    await restarted.drain()
    assert sorted(call.params["chat_id"] for call in api.sent()) == chats
    assert {row.status for row in await rows(sessionmaker)} == {OutboxStatus.SENT}


async def test_crash_after_telegram_accepted_resends_the_one_message(sessionmaker):
    """The documented residual window: accepted by Telegram, process gone before the result was
    committed. The restart cannot know, and sends that one message again (at least once)."""
    api = FakeBotApi()
    await queue(sessionmaker, [BASE + 5000])
    async with sessionmaker() as session:
        row = await outbox.claim_next(session, worker=f"{HOST}:{_dead_pid()}:5ec0ffee")
    await recording_bot(api).send_message(row.chat_id, row.text)  # ...and then kill -9
    await sender_for(api, sessionmaker, rate=50).drain()
    assert len(api.sent(BASE + 5000)) == 2
    assert (await rows(sessionmaker))[0].status == OutboxStatus.SENT


async def test_enqueue_is_idempotent_by_dedupe_key(sessionmaker):
    assert await queue(sessionmaker, [BASE + 6000, BASE + 6001]) == 2
    assert await queue(sessionmaker, [BASE + 6000, BASE + 6001]) == 0
    assert len(await rows(sessionmaker)) == 2


def _member_update(api: FakeBotApi, user_id: int, status: str) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": "Asha"}
    bot_user = {k: api.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
    return {
        "update_id": int(time.time() * 1000) % 10**9,
        "my_chat_member": {
            "chat": {"id": user_id, "type": "private", "first_name": "Asha"},
            "from": user,
            "date": int(time.time()),
            "old_chat_member": {"user": bot_user, "status": "member" if status == "kicked" else "kicked", "until_date": 0},
            "new_chat_member": {"user": bot_user, "status": status, **({"until_date": 0} if status == "kicked" else {})},
        },
    }


async def test_my_chat_member_block_and_unblock_update_the_stakeholder(app, api, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    member = await add_member(sessionmaker, cluster, BASE + 7000, "Asha", "ta")
    await queue(sessionmaker, [member.chat_id], stakeholder_ids={member.chat_id: member.id})

    await app.process_update(Update.de_json(_member_update(api, member.chat_id, "kicked"), app.bot))
    assert (await stakeholder_of(sessionmaker, member.chat_id)).status == StakeholderStatus.UNREACHABLE
    # What was still queued to them is skipped, never tried.
    await app.deps.extra["sender"].drain()
    assert api.sent(member.chat_id, include_failed=True) == []
    assert (await rows(sessionmaker))[0].status == OutboxStatus.SKIPPED

    await app.process_update(Update.de_json(_member_update(api, member.chat_id, "member"), app.bot))
    assert (await stakeholder_of(sessionmaker, member.chat_id)).status == StakeholderStatus.ACTIVE
    await queue(sessionmaker, [member.chat_id], stakeholder_ids={member.chat_id: member.id}, prefix="again")
    await app.deps.extra["sender"].drain()
    assert len(api.sent(member.chat_id)) == 1


async def test_replies_are_not_stuck_behind_a_bulk_send(settings, sessionmaker):
    """The application's bot has PTB's rate limiter; the sender gets its own Bot without one, so a
    user's reply goes out at once while a bulk send is under way."""
    api = FakeBotApi(token=settings.bot_token)
    app = build_application(settings, request=RecordingRequest(api), updates_request=RecordingRequest(api), background=False)
    await app.initialize()
    await post_init(app)
    try:
        sender = app.deps.extra["sender"]
        assert app.bot.rate_limiter is not None and sender.bot.rate_limiter is None
        await queue(sessionmaker, [BASE + 8000 + n for n in range(60)])
        bulk = asyncio.create_task(sender.drain())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await app.process_update(Update.de_json(api.make_message(BASE + 8999, "/help"), app.bot))
        elapsed = time.monotonic() - started
        assert api.sent(BASE + 8999), "no reply to /help"
        assert not bulk.done(), "the bulk send should still be running"
        assert elapsed < 0.5
        await bulk
        assert len(api.sent()) >= 61
    finally:
        await app.shutdown()
        await app.post_shutdown(app)
