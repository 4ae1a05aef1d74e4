"""The two transports under the bot: Bot API requests over aiohttp, SQLite in one trip."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy import text
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, TimedOut

from bot.db import create_engine, execute_and_commit
from bot.http import AiohttpRequest
from bot.sqlite import OneTripConnection
from tests.botapi import BotApiStandIn, FakeBotApi


def _bot(server: BotApiStandIn, **timeouts) -> Bot:
    return Bot(
        server.api.token,
        base_url=server.base_url,
        base_file_url=server.base_file_url,
        request=AiohttpRequest(**timeouts),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    )


async def test_aiohttp_request_sends_forms_files_and_maps_telegram_errors():
    async with BotApiStandIn() as server, _bot(server) as bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("हाँ", callback_data="yes")]])
        sent = await bot.send_message(42, "<b>नमस्ते</b>", parse_mode="HTML", reply_markup=markup)
        await bot.send_document(42, b"a,b\n1,2\n", filename="answers.csv", caption="सारांश")
        with pytest.raises(BadRequest, match="(?i)not modified"):
            await bot.edit_message_text("<b>नमस्ते</b>", chat_id=42, message_id=sent.message_id,
                                        parse_mode="HTML", reply_markup=markup)
    first, document = server.api.sent(42)[:2]
    assert first.params["text"] == "<b>नमस्ते</b>"
    assert first.params["reply_markup"] == {"inline_keyboard": [[{"text": "हाँ", "callback_data": "yes"}]]}
    assert sent.reply_markup == markup
    assert document.method == "sendDocument" and document.params["caption"] == "सारांश"
    assert [(name, content) for name, content in document.files.values()] == [("answers.csv", b"a,b\n1,2\n")]


async def test_aiohttp_request_times_out_and_reports_network_errors():
    api = FakeBotApi()

    async def slow(params, files):
        await asyncio.sleep(2)
        return api._send_message(params, files)

    api.on("sendMessage", slow)
    async with BotApiStandIn(api) as server, _bot(server, read_timeout=0.2) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(42, "late")
        api.on("sendMessage", None)
        assert (await bot.send_message(42, "on time")).text == "on time"

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = AiohttpRequest(connect_timeout=1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as error:
            await request.do_request(f"http://127.0.0.1:{port}/bot{api.token}/sendMessage", "POST")
        assert not isinstance(error.value, TimedOut)
    finally:
        await request.shutdown()


@pytest.fixture
async def sqlite_engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"))
    yield engine
    await engine.dispose()


async def _trips(engine, work) -> int:
    """How many times ``work(connection)`` hands a call to the SQLite thread."""
    trips = 0
    original = OneTripConnection._execute

    async def counted(self, fn, *args, **kwargs):
        nonlocal trips
        trips += 1
        return await original(self, fn, *args, **kwargs)

    OneTripConnection._execute = counted
    try:
        await work()
    finally:
        OneTripConnection._execute = original
    return trips


async def test_sqlite_statements_make_one_trip_and_keep_cursor_results(sqlite_engine):
    from sqlmodel.ext.asyncio.session import AsyncSession

    async with sqlite_engine.connect() as warm:  # the pool's first connection opens here
        await warm.execute(text("SELECT 1"))

    async def insert_and_read():
        async with sqlite_engine.begin() as connection:
            inserted = await connection.execute(text("INSERT INTO item (name) VALUES ('एक'), ('இரண்டு')"))
            assert inserted.rowcount == 2
            last = await connection.execute(text("INSERT INTO item (name) VALUES ('three')"))
            assert last.lastrowid == 3
            rows = (await connection.execute(text("SELECT id, name FROM item ORDER BY id"))).all()
            assert [tuple(row) for row in rows] == [(1, "एक"), (2, "இரண்டு"), (3, "three")]

    # three statements and the commit; the pool's rollback finds no transaction and costs nothing
    assert await _trips(sqlite_engine, insert_and_read) == 4

    async def read_only():
        async with sqlite_engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM item"))).scalar() == 3

    assert await _trips(sqlite_engine, read_only) == 1

    async def write_now():
        async with AsyncSession(sqlite_engine) as session:
            await execute_and_commit(session, text("UPDATE item SET name = 'ek' WHERE id = 1"))

    assert await _trips(sqlite_engine, write_now) == 1
    async with sqlite_engine.connect() as connection:  # committed: another connection sees it
        assert (await connection.execute(text("SELECT name FROM item WHERE id = 1"))).scalar() == "ek"


async def test_sqlite_rollback_still_undoes_uncommitted_writes(sqlite_engine):
    async with sqlite_engine.connect() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('kept?')"))
        await connection.rollback()
    async with sqlite_engine.connect() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('closed without commit')"))
    async with sqlite_engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM item"))).scalar() == 0


async def test_failed_one_trip_commit_leaves_nothing_behind(sqlite_engine):
    from sqlalchemy.exc import IntegrityError
    from sqlmodel.ext.asyncio.session import AsyncSession

    async with AsyncSession(sqlite_engine) as session:
        await execute_and_commit(session, text("INSERT INTO item (id, name) VALUES (1, 'one')"))
        with pytest.raises(IntegrityError):
            await execute_and_commit(session, text("INSERT INTO item (id, name) VALUES (1, 'again')"))
        await session.rollback()
        # The flag did not outlive the failed statement: this one waits for an explicit commit.
        await (await session.connection()).execute(text("INSERT INTO item (id, name) VALUES (2, 'two')"))
        await session.rollback()
    async with sqlite_engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, name FROM item"))).all()
    assert [tuple(row) for row in rows] == [(1, "one")]


async def test_rollback_after_a_cancelled_statement_still_ends_its_transaction(tmp_path):
    """A caller cancelled while its UPDATE waits for the thread: the UPDATE still runs and opens
    a transaction, so the rollback that follows must not be skipped as 'nothing to end'."""
    import time

    from bot.sqlite import async_creator

    path = tmp_path / "cancel.db"
    connect = async_creator(f"sqlite+aiosqlite:///{path}", timeout=0.2)
    first, second = await connect(), await connect()
    try:
        async with first.cursor() as cursor:
            await cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        busy = asyncio.create_task(first.on_thread(lambda raw: time.sleep(0.2)))
        await asyncio.sleep(0.01)
        update = asyncio.create_task(first.cursor().execute("INSERT INTO item (name) VALUES ('x')"))
        await asyncio.sleep(0.01)
        update.cancel()
        await first.rollback()  # while the INSERT still waits behind the sleep
        await busy
        await first.on_thread(lambda raw: None)  # the INSERT has run by now
        async with second.cursor() as cursor:  # would meet "database is locked" otherwise
            await cursor.execute("INSERT INTO item (name) VALUES ('y')")
        await second.commit()
        async with second.cursor() as cursor:
            await cursor.execute("SELECT name FROM item")
            assert [tuple(row) for row in await cursor.fetchall()] == [("y",)]
    finally:
        await first.close()
        await second.close()


async def test_long_results_stream_in_chunks_and_short_ones_make_one_trip(sqlite_engine, monkeypatch):
    from bot.sqlite import OneTripCursor

    monkeypatch.setattr(OneTripCursor, "CHUNK", 10)
    async with sqlite_engine.begin() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES (:name)"), [{"name": f"n{i}"} for i in range(95)])

    async def stream():
        async with sqlite_engine.connect() as connection:
            result = await connection.stream(text("SELECT id FROM item ORDER BY id"))
            seen = [row.id async for row in result]
            assert seen == list(range(1, 96))

    # the first trip brings 10 rows, later ones as many as SQLAlchemy's growing buffer asks for
    assert 2 <= await _trips(sqlite_engine, stream) < 10

    async def fetch_all():
        async with sqlite_engine.connect() as connection:
            assert len((await connection.execute(text("SELECT id FROM item"))).all()) == 95

    assert await _trips(sqlite_engine, fetch_all) == 2  # a chunk, then the rest at once

    async def abandoned():
        async with sqlite_engine.connect() as connection:
            result = await connection.stream(text("SELECT id FROM item"))
            assert (await result.fetchmany(3)) == [(1,), (2,), (3,)]
            await result.close()  # the cursor left open on the thread is closed there

    assert await _trips(sqlite_engine, abandoned) == 2
