"""Diagnostics for bench.survey_answers: ``python -m bot run`` with SQL counting and/or without
the rate limiter. Not the measurement itself -- bench.survey_answers runs ``python -m bot run``
unless asked for ``--ours instrumented`` / ``--ours no-rate-limiter``.

With BENCH_SQL_COUNTS=path, every SQL statement, commit and pool checkout is counted (and timed)
and the counts are written to that JSON file when the bot exits.
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
        timings["execute_seconds"] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())

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

    # Start-up queries (migrations, menus) are not part of the load: the bench sends SIGUSR1
    # when it starts the clock.
    import signal

    signal.signal(signal.SIGUSR1, lambda *_: reset())

    def dump() -> None:
        with open(path, "w") as handle:
            json.dump({**counts, **timings, "by_statement": by_statement}, handle)

    atexit.register(dump)


def main() -> int:
    args = sys.argv[1:]
    if os.environ.get("BENCH_SQL_COUNTS"):
        install_counters(os.environ["BENCH_SQL_COUNTS"])
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
