"""A broadcast to N stakeholders through the real outbox and sender, over HTTP, within limits.

The local Bot API stand-in (``tests.botapi.BotApiStandIn``) enforces Telegram's limits: 30
messages a second overall and 1 a second per chat, answering 429 with ``retry_after`` beyond
them; 2 % of the recipients have blocked the bot (403). One cluster with N members (Hindi,
Tamil and English) gets one broadcast, created and started by the service functions the
/broadcast dialog uses. The sender is built the way the bot builds it: the application's Bot
(with PTB's rate limiter), from which the sender derives its own Bot without one, talking HTTP
to the stand-in; it runs until the broadcast is done and its summary sent.

Printed: achieved rate / limit (recipient messages, over the span from the first to the last),
the 429s, duplicates (a recipient who got it twice), lost (a reachable recipient who never got
it), the worst one-second window of messages the stand-in accepted, and whether every blocked
user was marked unreachable.

``--kill``: the sender runs in a subprocess (``python -m bench.broadcast --worker ...``); at
about half-way (a random moment within the second after half the recipients got it, so the kill
is not timed to any particular step) it is killed with SIGKILL and a new one started on the
same database, and the same figures are printed for the whole broadcast, with how many rows the
killed sender left ``sending``. Such a row is sent again after the restart; if Telegram had
already accepted it (the few milliseconds between its answer and the commit of the result, see
bot/sender.py), that shows up here as a duplicate.

    python -m bench.broadcast                    # 5,000 recipients, about three minutes
    python -m bench.broadcast --kill
    python -m bench.broadcast --recipients 300   # a quick look
    python -m bench.broadcast --database-url postgresql+asyncpg://u@host/db --reset-postgres

Exit status: 0 when the broadcast completed (whatever the figures), 1 when the run broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.botapi import BotApiStandIn, FakeBotApi

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "4343:BENCH-BROADCAST"
CDA = 5_000_000
BASE = 20_000_000
LIMIT = 30.0
GOAL = 0.95
LANGUAGES = ("hi", "ta", "en")
TEXTS = {
    "default": "<b>Cluster meeting</b> on Friday at 10:00, community hall. Please come.",
    "hi": "<b>क्लस्टर बैठक</b> शुक्रवार सुबह 10 बजे, सामुदायिक भवन में। कृपया आइए।",
    "ta": "<b>கிளஸ்டர் கூட்டம்</b> வெள்ளிக்கிழமை காலை 10 மணிக்கு, சமுதாயக் கூடத்தில்.",
}


def recipients(count: int) -> list[int]:
    return [BASE + n for n in range(count)]


def blocked_of(chats: list[int]) -> set[int]:
    return set(chats[25::50])  # 2 %


# ---------------------------------------------------------------------- database


async def prepare(url: str, count: int, *, reset_postgres: bool) -> int:
    """Migrate, add one cluster with ``count`` members, create and start the broadcast."""

    from bench._database import migrated_engine
    from bot.db import create_sessionmaker
    from bot.services import broadcasts
    from bot.services.clusters import create_cluster
    from bot.services.stakeholders import NOTICE_VERSION
    from models import Membership, Stakeholder

    engine = await migrated_engine(url, reset_postgres=reset_postgres)
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            cluster = await create_cluster(session, name="Bench Brassware")
            people = [
                Stakeholder(
                    telegram_user_id=chat,
                    chat_id=chat,
                    name=f"Member {n}",
                    role="msme_owner",
                    language=LANGUAGES[n % 3],
                    notice_version=NOTICE_VERSION,
                )
                for n, chat in enumerate(recipients(count))
            ]
            session.add_all(people)
            await session.flush()
            session.add_all(
                Membership(stakeholder_id=person.id, cluster_id=cluster.id) for person in people
            )
            await session.commit()
        async with sessionmaker() as session:
            row = await broadcasts.create_broadcast(
                session,
                cluster_id=cluster.id,
                texts=TEXTS,
                audience={"kind": "all"},
                scheduled_at=None,
                created_by=CDA,
                reply_language="en",
            )
        async with sessionmaker() as session:
            await broadcasts.start_broadcast(session, broadcast_id=row.id)
        return row.id
    finally:
        await engine.dispose()


async def broadcast_finished(sessionmaker, broadcast_id: int) -> bool:
    """Done, and nothing of it (summary included) left to send."""
    from sqlmodel import col, func, select

    from bot.services import broadcasts
    from models import Broadcast, OutboxMessage, OutboxStatus

    async with sessionmaker() as session:
        row = await session.get(Broadcast, broadcast_id, populate_existing=True)
        pending = await session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.ref_id == broadcast_id,
                col(OutboxMessage.purpose).in_([broadcasts.PURPOSE, broadcasts.SUMMARY_PURPOSE]),
                col(OutboxMessage.status).in_([OutboxStatus.QUEUED, OutboxStatus.SENDING]),
            )
        )
        summary = await session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.ref_id == broadcast_id,
                OutboxMessage.purpose == broadcasts.SUMMARY_PURPOSE,
            )
        )
        return row.status == broadcasts.DONE and pending.one() == 0 and summary.one() == 1


async def rows_sending(url: str) -> int:
    from sqlmodel import func, select

    from bot.db import create_engine, create_sessionmaker
    from models import OutboxMessage, OutboxStatus

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            found = await session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENDING)
            )
            return found.one()
    finally:
        await engine.dispose()


async def database_checks(url: str, broadcast_id: int, blocked: set[int]) -> dict:
    from sqlmodel import col, func, select

    from bot.db import create_engine, create_sessionmaker
    from bot.services import broadcasts
    from models import OutboxMessage, Stakeholder
    from models.stakeholder import StakeholderStatus

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            statuses = await session.exec(
                select(OutboxMessage.status, func.count())
                .where(
                    OutboxMessage.purpose == broadcasts.PURPOSE,
                    OutboxMessage.ref_id == broadcast_id,
                )
                .group_by(OutboxMessage.status)
            )
            unreachable = await session.exec(
                select(func.count())
                .select_from(Stakeholder)
                .where(
                    col(Stakeholder.chat_id).in_(sorted(blocked)),
                    Stakeholder.status == StakeholderStatus.UNREACHABLE,
                )
            )
            others = await session.exec(
                select(func.count())
                .select_from(Stakeholder)
                .where(
                    col(Stakeholder.chat_id).not_in(sorted(blocked)),
                    Stakeholder.status != StakeholderStatus.ACTIVE,
                )
            )
            return {
                "rows": dict(statuses.all()),
                "blocked_unreachable": unreachable.one(),
                "others_not_active": others.one(),
            }
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------- the sender


async def run_sender(url: str, base_url: str, broadcast_id: int, rate: float) -> dict:
    """The sender as the bot builds it, until the broadcast is done. Returns its counters."""
    from bot.app import build_application
    from bot.config import load_settings
    from bot.sender import OutboxSender

    settings = load_settings(
        env_file=None,
        bot_token=TOKEN,
        database_url=url,
        telegram_base_url=f"{base_url}/bot",
        telegram_base_file_url=f"{base_url}/file/bot",
        outbox_rate=rate,
    )
    application = build_application(settings, background=True)
    await application.initialize()
    sender = OutboxSender(application.bot, application.deps.sessionmaker, rate=settings.outbox_rate)
    sender.start()
    try:
        while not await broadcast_finished(application.deps.sessionmaker, broadcast_id):
            await asyncio.sleep(0.25)
    finally:
        await sender.stop()
        await application.shutdown()
        await application.deps.extra["engine"].dispose()
    return dict(sender.stats)


def worker_main(args: argparse.Namespace) -> None:
    stats = asyncio.run(run_sender(args.database_url, args.base_url, args.broadcast_id, args.rate))
    print(json.dumps(stats), flush=True)


async def start_worker(
    url: str, base_url: str, broadcast_id: int, rate: float
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.broadcast",
        "--worker",
        "--database-url",
        url,
        "--base-url",
        base_url,
        "--broadcast-id",
        str(broadcast_id),
        "--rate",
        str(rate),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


# ---------------------------------------------------------------------- figures


def worst_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def figures(api: FakeBotApi, chats: list[int], blocked: set[int]) -> dict:
    wanted = set(chats)
    sends = [call for call in api.calls if call.method == "sendMessage"]
    delivered = Counter(
        call.params["chat_id"] for call in sends if call.ok and call.params["chat_id"] in wanted
    )
    to_recipients = [
        call for call in sends if call.params["chat_id"] in wanted and call.status != 429
    ]
    accepted = [call.time for call in sends if call.ok]
    span = (
        max(c.time for c in to_recipients) - min(c.time for c in to_recipients)
        if len(to_recipients) > 1
        else 0.0
    )
    return {
        "requests": len(to_recipients),
        "delivered": sum(delivered.values()),
        "blocked_refusals": sum(1 for c in sends if c.status == 403),
        "span_s": span,
        "request_rate": (len(to_recipients) - 1) / span if span else 0.0,
        "delivered_rate": (sum(delivered.values()) - 1) / span if span else 0.0,
        "http_429": sum(1 for c in sends if c.status == 429),
        "duplicates": sum(n - 1 for n in delivered.values() if n > 1),
        "lost": sum(1 for chat in wanted - blocked if delivered[chat] == 0),
        "blocked_tried_twice": sum(
            1 for chat in blocked if sum(1 for c in sends if c.params["chat_id"] == chat) > 1
        ),
        "worst_window": worst_window(accepted),
        "summary_sent": any(
            "Broadcast finished" in (c.params.get("text") or "")
            for c in sends
            if c.ok and c.params["chat_id"] == CDA
        ),
        "progress_edits": sum(1 for c in api.calls if c.method == "editMessageText" and c.ok),
    }


def report(title: str, numbers: dict, checks: dict, blocked: set[int], extra: dict) -> None:
    ok = lambda flag: "yes" if flag else "NO"  # noqa: E731
    print(f"\n== {title} ==")
    for key, value in extra.items():
        print(f"{key:<28} {value}")
    print(
        f"{'requests to recipients':<28} {numbers['requests']} ({numbers['delivered']} delivered, {numbers['blocked_refusals']} refused as blocked)"
    )
    print(f"{'span':<28} {numbers['span_s']:.1f} s")
    print(
        f"{'achieved rate / limit':<28} {numbers['request_rate']:.2f}/s / {LIMIT:.0f} = {numbers['request_rate'] / LIMIT:.3f}"
        f"  (delivered only: {numbers['delivered_rate'] / LIMIT:.3f}; goal {GOAL})"
    )
    print(f"{'429 responses':<28} {numbers['http_429']}")
    print(f"{'duplicates':<28} {numbers['duplicates']}")
    print(f"{'lost':<28} {numbers['lost']}")
    print(f"{'worst one-second window':<28} {numbers['worst_window']} messages (limit {LIMIT:.0f})")
    print(
        f"{'blocked marked unreachable':<28} {checks['blocked_unreachable']} of {len(blocked)}: {ok(checks['blocked_unreachable'] == len(blocked))}"
        f"; blocked users retried: {numbers['blocked_tried_twice']}; others wrongly marked: {checks['others_not_active']}"
    )
    print(f"{'outbox rows':<28} {checks['rows']}")
    print(
        f"{'progress edits / summary':<28} {numbers['progress_edits']} / {ok(numbers['summary_sent'])}"
    )
    met = (
        numbers["request_rate"] / LIMIT >= GOAL
        and not numbers["http_429"]
        and not numbers["duplicates"]
        and not numbers["lost"]
        and checks["blocked_unreachable"] == len(blocked)
    )
    print(f"{'goal met':<28} {ok(met)}")


# ---------------------------------------------------------------------- driver


async def bench(args: argparse.Namespace) -> int:
    chats = recipients(args.recipients)
    blocked = blocked_of(chats)
    temp = None
    url = args.database_url
    if url is None:
        temp = tempfile.TemporaryDirectory(prefix="bench-broadcast-")
        url = f"sqlite+aiosqlite:///{Path(temp.name) / 'bench.db'}"
    api = FakeBotApi(
        token=TOKEN, global_rate_limit=LIMIT, per_chat_rate_limit=1, blocked_chat_ids=set(blocked)
    )
    try:
        started = time.monotonic()
        broadcast_id = await prepare(url, args.recipients, reset_postgres=args.reset_postgres)
        print(
            f"prepared {args.recipients} recipients ({len(blocked)} blocked) in {time.monotonic() - started:.1f} s; "
            f"sending at {args.rate}/s{' with a kill -9 half-way' if args.kill else ''}...",
            flush=True,
        )
        extra: dict = {
            "recipients": f"{args.recipients} ({len(blocked)} blocked the bot)",
            "database": url.split("://")[0],
            "sender rate setting": args.rate,
        }
        async with BotApiStandIn(api) as server:
            base_url = server.base_url.removesuffix("/bot")
            if args.kill:
                extra.update(
                    await run_with_kill(api, url, base_url, broadcast_id, args.rate, chats)
                )
            else:
                stats = await asyncio.wait_for(
                    run_sender(url, base_url, broadcast_id, args.rate), timeout=args.timeout
                )
                extra["sender counters"] = stats
        checks = await database_checks(url, broadcast_id, blocked)
        report(
            "broadcast with a kill -9 and a restart" if args.kill else "broadcast",
            figures(api, chats, blocked),
            checks,
            blocked,
            extra,
        )
        return 0
    except (TimeoutError, RuntimeError) as error:
        print(f"bench broke: {error!r}", file=sys.stderr)
        return 1
    finally:
        if temp is not None:
            temp.cleanup()


async def run_with_kill(
    api: FakeBotApi, url: str, base_url: str, broadcast_id: int, rate: float, chats: list[int]
) -> dict:
    wanted = set(chats)
    half = len(chats) // 2

    def delivered() -> int:
        return sum(
            1
            for c in api.calls
            if c.method == "sendMessage" and c.ok and c.params["chat_id"] in wanted
        )

    first = await start_worker(url, base_url, broadcast_id, rate)
    deadline = time.monotonic() + 600
    while delivered() < half:
        if first.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError("the first sender stopped before half-way")
        await asyncio.sleep(0.005)
    await asyncio.sleep(random.uniform(0.0, 1.0))
    first.send_signal(signal.SIGKILL)
    await first.wait()
    killed_at = time.monotonic()
    at_kill = delivered()
    left_sending = await rows_sending(url)
    second = await start_worker(url, base_url, broadcast_id, rate)
    out, _ = await asyncio.wait_for(second.communicate(), timeout=600)
    if second.returncode != 0:
        raise RuntimeError(f"the restarted sender exited with {second.returncode}")
    resumed = min(
        (c.time for c in api.calls if c.method == "sendMessage" and c.time > killed_at),
        default=killed_at,
    )
    return {
        "killed after": f"{at_kill} delivered (pid {first.pid}, SIGKILL)",
        "left 'sending' by the kill": left_sending,
        "restart gap": f"{resumed - killed_at:.1f} s (new process start-up, included in the span)",
        "restarted sender counters": json.loads(out.decode().strip().splitlines()[-1]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument(
        "--kill", action="store_true", help="kill -9 the sender half-way and restart it"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=LIMIT,
        help="OUTBOX_RATE of the sender (default 30, the limit)",
    )
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument(
        "--reset-postgres", action="store_true", help="drop and recreate the public schema first"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--broadcast-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    sys.exit(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
