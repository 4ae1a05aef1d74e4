"""Diagnostics for bench.survey_answers: ``python -m bot run`` with SQL counting and/or without
the rate limiter. Not the measurement itself -- bench.survey_answers runs ``python -m bot run``
unless asked for ``--ours instrumented`` / ``--ours no-rate-limiter``.

With BENCH_SQL_COUNTS=path, every SQL statement, commit and pool checkout is counted, the wall
time spent in DB calls, Bot API calls and whole updates is summed, and all of it is written to that
JSON file when the bot exits (SIGUSR1 resets the counters; the bench sends it when the clock
starts). ``--no-rate-limiter`` builds the application without AIORateLimiter.
BENCH_DB_TWEAKS=pool=N,sync=normal changes the SQLite engine (pool size, PRAGMA synchronous) for
experiments.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time
from collections import Counter


def install_counters(path: str) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    counts: Counter[str] = Counter()
    by_statement: Counter[str] = Counter()
    timings = {"execute_seconds": 0.0}

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()
        verb = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else "?"
        counts["statements"] += 1
        counts[verb] += 1
        by_statement[re.sub(r"\s+", " ", statement).strip()[:150]] += 1

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        timings["execute_seconds"] += time.perf_counter() - conn.info.pop(
            "bench_t0", time.perf_counter()
        )

    @event.listens_for(Engine, "commit")
    def _commit(conn):
        counts["commits"] += 1

    @event.listens_for(Pool, "checkout")
    def _checkout(dbapi_connection, record, proxy):
        counts["connections_checked_out"] += 1

    @event.listens_for(Pool, "connect")
    def _connect(dbapi_connection, record):
        counts["new_connections"] += 1

    def reset() -> None:
        counts.clear()
        by_statement.clear()
        timings.update(execute_seconds=0.0)
        wall.clear()
        calls.clear()

    wall: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    _wrap_async_timers(wall, calls)

    # Start-up queries (migrations, menus) are not part of the load: the bench sends SIGUSR1
    # when it starts the clock.
    import signal

    signal.signal(signal.SIGUSR1, lambda *_: reset())

    def dump() -> None:
        with open(path, "w") as handle:
            json.dump(
                {**counts, **timings, "by_statement": by_statement, "wall": wall, "calls": calls},
                handle,
            )

    atexit.register(dump)


def _wrap_async_timers(wall: Counter, calls: Counter) -> None:
    """Wall time (sums over concurrent updates) in DB calls, Bot API calls and whole updates."""
    import functools

    from sqlalchemy.ext.asyncio import AsyncSession as SaAsyncSession
    from sqlmodel.ext.asyncio.session import AsyncSession as SmAsyncSession
    from telegram import Bot
    from telegram.ext import Application, BaseUpdateProcessor

    def timed(cls, name: str, key) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            label = key(args, kwargs)
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                wall[label] += time.perf_counter() - started
                calls[label] += 1

        setattr(cls, name, wrapper)

    for name in ("get", "execute", "commit", "close", "flush", "delete", "rollback"):
        timed(SaAsyncSession, name, lambda a, k, n=name: f"db.{n}")
    timed(SmAsyncSession, "exec", lambda a, k: "db.exec")

    import aiosqlite.core
    from sqlalchemy.pool import QueuePool

    timed(aiosqlite.core.Connection, "_execute", lambda a, k: "db.aiosqlite_roundtrip")
    original_do_get = QueuePool._do_get

    def _do_get(self):
        started = time.perf_counter()
        try:
            return original_do_get(self)
        finally:
            wall["db.pool_checkout_wait"] += time.perf_counter() - started
            calls["db.pool_checkout_wait"] += 1

    QueuePool._do_get = _do_get
    timed(Bot, "_post", lambda a, k: "api." + str(a[1] if len(a) > 1 else k.get("endpoint")))
    timed(Application, "process_update", lambda a, k: "update.handlers")
    timed(BaseUpdateProcessor, "process_update", lambda a, k: "update.queued_in_processor")


def _apply_db_tweaks(tweaks: list[str]) -> None:
    """Experiments only (BENCH_DB_TWEAKS): pool=N, sync=normal."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    import bot.db

    options = dict(t.split("=", 1) for t in tweaks)

    def create_engine(url: str):
        if not url.startswith("sqlite"):
            return create_async_engine(url, pool_pre_ping=True)
        kwargs = {}
        if "pool" in options:
            kwargs.update(pool_size=int(options["pool"]), max_overflow=0)
        engine = create_async_engine(url, connect_args={"timeout": 10}, **kwargs)
        event.listen(engine.sync_engine, "connect", bot.db._tune_sqlite)
        if options.get("sync") == "normal":

            @event.listens_for(engine.sync_engine, "connect")
            def _normal(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        return engine

    bot.db.create_engine = create_engine
    import bot.app

    bot.app.create_engine = create_engine


def main() -> int:
    args = sys.argv[1:]
    if os.environ.get("BENCH_SQL_COUNTS"):
        install_counters(os.environ["BENCH_SQL_COUNTS"])
    tweaks = [t for t in os.environ.get("BENCH_DB_TWEAKS", "").split(",") if t]
    if tweaks:
        _apply_db_tweaks(tweaks)
    if "--no-rate-limiter" in args:
        import bot.app

        original = bot.app.build_application

        def build_application(settings, **kwargs):
            kwargs["rate_limiter"] = False
            return original(settings, **kwargs)

        bot.app.build_application = build_application
    from bot.cli import main as cli_main

    return cli_main(["run"])


if __name__ == "__main__":
    sys.exit(main())
