"""SQLite connections for the async engine that make one trip to their thread per statement.

aiosqlite runs each sqlite3 call on a thread of its own and hands the result back to the event
loop, and SQLAlchemy's adapter makes four such trips for every SELECT (open a cursor, execute,
fetch, close) and three for every UPDATE. Each trip wakes the loop and trades the GIL between
threads, which made those hand-overs a large share of the CPU a survey answer costs
(bench/survey_answers.py). The cursor below does a whole statement -- execute, fetch its rows,
close -- in one trip.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url


class OneTripCursor:
    """What SQLAlchemy's aiosqlite adapter uses of ``aiosqlite.Cursor``, one trip per statement.

    The first trip executes and fetches up to ``CHUNK`` rows; a result that fits (every query a
    chat update makes) is then closed in that same trip. A longer one -- an export streaming
    100,000 answers -- keeps its cursor open on the thread and is fetched a chunk per trip.
    """

    CHUNK = 1000
    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self._open: sqlite3.Cursor | None = None  # only ever used on the connection's thread
        self.description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        await self._run(lambda cursor: cursor.execute(sql) if parameters is None else cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Any) -> OneTripCursor:
        await self._run(lambda cursor: cursor.executemany(sql, parameters))
        return self

    async def _run(self, statement) -> None:
        await self.close()
        commit, self._connection.commit_with_next_statement = self._connection.commit_with_next_statement, False
        chunk = self.CHUNK

        def trip(raw: sqlite3.Connection):
            cursor = raw.cursor()
            try:
                statement(cursor)
                rows = cursor.fetchmany(chunk) if cursor.description else []
                result = rows, cursor.description, cursor.rowcount, cursor.lastrowid
            except BaseException:
                cursor.close()
                raise
            more = len(rows) == chunk
            if not more:
                cursor.close()
            if commit:
                raw.commit()
            return (*result, cursor if more else None)

        rows, self.description, self.rowcount, self.lastrowid, self._open = await self._connection.on_thread(trip)
        self._rows = deque(rows)

    async def _fetch(self, size: int | None) -> None:
        """Bring ``size`` more rows (every row if None) from the open cursor into the buffer."""
        cursor = self._open

        def trip(_raw: sqlite3.Connection):
            rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
            done = size is None or len(rows) < size
            if done:
                cursor.close()
            return rows, done

        rows, done = await self._connection.on_thread(trip)
        self._rows.extend(rows)
        if done:
            self._open = None

    async def fetchall(self) -> list[Any]:
        if self._open is not None:
            await self._fetch(None)
        rows, self._rows = list(self._rows), deque()
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size and self._open is not None:
            await self._fetch(max(size, self.CHUNK))
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    async def fetchone(self) -> Any:
        rows = await self.fetchmany(1)
        return rows[0] if rows else None

    async def close(self) -> None:
        self._rows = deque()
        if self._open is not None:
            cursor, self._open = self._open, None
            await self._connection.on_thread(lambda _raw: cursor.close())


class OneTripConnection(aiosqlite.Connection):
    # Set by bot.db.execute_and_commit: the next statement commits on the thread, in the same
    # trip, so the write lock is held for microseconds instead of across two hand-overs (where
    # other writers meet a locked database and sleep in SQLite's busy handler).
    commit_with_next_statement = False

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    # Trips handed to the thread and trips it has finished, each counter written by one thread
    # only: while they differ, a statement may still be on its way (its caller cancelled, say).
    _submitted = 0
    _finished = 0

    async def _execute(self, fn, *args, **kwargs):
        self._submitted += 1

        def counted():
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1

        return await super()._execute(counted)

    def _may_hold_transaction(self) -> bool:
        # sqlite3 reads the flag without touching the database; it is only read once the thread
        # is idle, and a statement still queued (its caller cancelled) may yet open one.
        if self._finished != self._submitted:
            return True
        return self._connection is not None and self._connection.in_transaction

    # The pool rolls back every connection it gets back, and most come back right after a commit
    # or from reads that never began a transaction: there is nothing to end, so no trip is made.

    async def commit(self) -> None:
        if self._may_hold_transaction():
            await super().commit()

    async def rollback(self) -> None:
        if self._may_hold_transaction():
            await super().rollback()

    async def on_thread(self, function):
        """Run ``function(sqlite3_connection)`` on this connection's thread."""
        return await self._execute(lambda: function(self._conn))


def async_creator(url: str, *, timeout: float):
    """``create_async_engine(async_creator=...)`` for a file database named by ``url``."""
    database = make_url(url).database or ":memory:"

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(partial(sqlite3.connect, database, timeout=timeout), 64)
        # As SQLAlchemy does for aiosqlite's own connections: a forgotten connection must not
        # keep the interpreter from exiting.
        getattr(connection, "_thread", connection).daemon = True
        return await connection

    return connect
