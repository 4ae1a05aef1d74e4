"""Monitoring at scale: /stats, each chart and the exports on a large cluster.

Generates one cluster with 10,000 stakeholders, three trust & linkage rounds with 100,000 answers
(25,000 responses of four answers each, with their linkage edges), 500 activities with reports,
meetings with RSVPs and the survey invitations' deliveries, all with bulk inserts. Then it times,
one after the other:

* the dashboard service (``stats.dashboard``) and the whole ``/stats`` handler, driven through
  ``Application.process_update`` against the in-process fake Bot API;
* each section's chart (``charts.section_png``);
* the XLSX export (``exports.write_export``), the CSV zip, and ``/export`` through the handler.

For each it prints the seconds, the peak resident memory while it ran (the kernel's high-water
mark, reset before each step through /proc/self/clear_refs; the process peak where that is not
allowed), and the event loop's longest stall: a ticker task sleeps 10 ms at a time and records by
how much each wake-up came late, with the longest garbage collection beside it (a collection
holds the interpreter lock, so from any thread it stalls the loop). Goals: each step under 5 s,
memory under 250 MB, no stall over 100 ms.

The data is generated in a child process, so the measured process holds only what a running bot
holds. After start-up the bench calls ``gc.freeze()``, as a long-running bot should once
everything is imported: otherwise each full collection walks the million-odd objects the imports
create, a 100-250 ms stall in whichever update happens to set it off (``--no-freeze`` shows it).

    python -m bench.reporting                       # temporary SQLite file
    python -m bench.reporting --members 2000        # a quick run
    python -m bench.reporting --database-url postgresql+asyncpg://postgres@127.0.0.1/bench --reset-postgres
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlmodel import select

from bench._database import migrated_engine
from bot.db import create_engine, create_sessionmaker
from models import (
    Activity,
    ActivityPerson,
    CompletionReport,
    LinkageEdge,
    Meeting,
    MeetingInvite,
    Membership,
    OutboxMessage,
    Stakeholder,
    SurveyInvitation,
    SurveyLaunch,
    SurveyResponse,
)

CDA = 4_200_000_001
TOKEN = "4242:BENCH-TOKEN"
USER_BASE = 30_000_000
CHUNK = 5000
GOAL_SECONDS, GOAL_RSS_MB, GOAL_STALL_MS = 5.0, 250.0, 100.0
LANGUAGES = ("hi", "en", "ta", "bn", "mr", "te", "gu", "kn", "ml", "pa")
ROLES = (
    ("msme_owner", 70),
    ("large_enterprise", 4),
    ("support_institution", 5),
    ("bank", 5),
    ("service_provider", 5),
    ("industry_association", 3),
    ("local_government", 2),
    ("academia", 2),
    ("other", 4),
)
FIRST = (
    "Ramesh",
    "Sunita",
    "अमित",
    "प्रिया",
    "கார்த்திக்",
    "লক্ষ্মী",
    "ਗੁਰਪ੍ਰੀਤ",
    "Srinivas",
    "ज्योति",
    "Farhan",
)
LAST = ("Kumar", "Sharma", "शर्मा", "வேலு", "Das", "सिंह", "Patel", "Reddy", "Khan", "Iyer")


# ---------------------------------------------------------------- measuring


class GcWatch:
    """The longest garbage collection: it holds the GIL, so it stalls the loop from any thread."""

    def __init__(self) -> None:
        self.worst, self._started = 0.0, 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.worst = max(self.worst, time.perf_counter() - self._started)


class LoopWatch:
    """Records how late a 10 ms sleep wakes up: the longest time the loop was kept busy."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.worst, self._task = interval, 0.0, None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.worst = max(self.worst, loop.time() - before - self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Result:
    name: str
    seconds: float
    peak_mb: float
    stall_ms: float
    gc_ms: float
    note: str = ""

    def ok(self) -> bool:
        return (
            self.seconds < GOAL_SECONDS
            and self.peak_mb < GOAL_RSS_MB
            and self.stall_ms < GOAL_STALL_MS
        )


async def measure(name: str, step: Callable[[], Awaitable[str]]) -> Result:
    watch, collections = LoopWatch(), GcWatch()
    per_step = _reset_peak()
    watch.start()
    await asyncio.sleep(0.02)  # the ticker is running before the step starts
    watch.worst = 0.0
    gc.callbacks.append(collections)
    started = time.perf_counter()
    try:
        note = await step()
    finally:
        seconds = time.perf_counter() - started
        gc.callbacks.remove(collections)
    await asyncio.sleep(0.02)
    await watch.stop()
    result = Result(
        name=name,
        seconds=seconds,
        peak_mb=_peak_mb(),
        stall_ms=watch.worst * 1000,
        gc_ms=collections.worst * 1000,
        note=note + ("" if per_step else " (process peak)"),
    )
    verdict = "ok" if result.ok() else "OVER GOAL"
    print(
        f"  {name:<24} {seconds:6.2f} s   peak RSS {result.peak_mb:6.1f} MB   "
        f"longest loop stall {result.stall_ms:6.1f} ms (longest GC {result.gc_ms:5.1f} ms)   "
        f"{verdict}  {result.note}",
        flush=True,
    )
    return result


# ---------------------------------------------------------------- data


def _weighted_roles(rng: random.Random, count: int) -> list[str]:
    names, weights = zip(*ROLES, strict=True)
    return rng.choices(names, weights=weights, k=count)


async def _bulk(session, model, rows: list[dict[str, Any]]) -> None:
    """Core executemany in chunks: no ORM objects, so 100,000 rows take seconds."""
    connection = await session.connection()
    for start in range(0, len(rows), CHUNK):
        await connection.execute(insert(model.__table__), rows[start : start + CHUNK])


async def generate(sessionmaker, *, members: int, answers: int, activities: int, seed: int):
    """One cluster with everything the dashboard and the exports read; returns it."""
    from bot.services.clusters import create_cluster
    from bot.services.surveys import service as surveys

    rng = random.Random(seed)
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        cluster = await create_cluster(
            session, name=f"Bench cluster {os.getpid()}-{time.time_ns()}", language="hi"
        )
        installed = {
            survey.form_id: survey
            for survey in await surveys.install_templates(session, cluster=cluster)
        }
        trust = installed["trust_linkage"]
        salt = await surveys.respondent_salt(session)

        roles = _weighted_roles(rng, members)
        people = []
        for number in range(members):
            joined = now - timedelta(days=rng.randint(0, 540), minutes=rng.randint(0, 1440))
            people.append(
                {
                    "telegram_user_id": USER_BASE + number,
                    "chat_id": USER_BASE + number,
                    "name": f"{rng.choice(FIRST)} {rng.choice(LAST)} {number}",
                    "role": roles[number],
                    "enterprise": f"Unit {number}" if roles[number] == "msme_owner" else None,
                    "product": "brass",
                    "size_class": "micro",
                    "phone": None,
                    "language": rng.choice(LANGUAGES),
                    "consent_at": joined,
                    "notice_version": "2026-11",
                    "status": "unreachable" if rng.random() < 0.02 else "active",
                    "created_at": joined,
                    "updated_at": joined,
                }
            )
        await _bulk(session, Stakeholder, people)
        rows = (
            await session.exec(
                select(
                    Stakeholder.id,
                    Stakeholder.telegram_user_id,
                    Stakeholder.role,
                    Stakeholder.status,
                    Stakeholder.created_at,
                )
                .where(
                    Stakeholder.telegram_user_id >= USER_BASE,
                    Stakeholder.telegram_user_id < USER_BASE + members,
                )
                .order_by(Stakeholder.telegram_user_id)
            )
        ).all()
        ids = [row[0] for row in rows]
        user_of = {row[0]: row[1] for row in rows}
        active = [row[0] for row in rows if row[3] == "active"]
        supporters = [
            row[0]
            for row in rows
            if row[2] in ("support_institution", "bank", "industry_association")
        ]
        await _bulk(
            session,
            Membership,
            [
                {"stakeholder_id": row[0], "cluster_id": cluster.id, "joined_at": row[4]}
                for row in rows
            ],
        )

        # Three rounds; 100,000 answers = 25,000 responses x 4 questions, split 8,000 / 8,500 / 8,500.
        responses_total = answers // 4
        per_wave = [
            responses_total - 2 * (responses_total * 34 // 100),
            responses_total * 34 // 100,
            responses_total * 34 // 100,
        ]
        for wave, count in enumerate(per_wave, start=1):
            created = now - timedelta(days=(3 - wave) * 120 + 10)
            launch = SurveyLaunch(
                survey_id=trust.id,
                cluster_id=cluster.id,
                wave=wave,
                audience={"kind": "all", "value": None},
                closes_at=created + timedelta(days=14),
                closed_at=created + timedelta(days=14),
                created_at=created,
                created_by=CDA,
            )
            session.add(launch)
            await session.flush()
            await _bulk(
                session,
                SurveyInvitation,
                [
                    {"launch_id": launch.id, "stakeholder_id": sid, "invited_at": created}
                    for sid in active
                ],
            )
            await _bulk(
                session,
                OutboxMessage,
                [
                    {
                        "chat_id": user_of[sid],
                        "stakeholder_id": sid,
                        "text": "Survey invitation",
                        "purpose": "survey_invite",
                        "ref_id": launch.id,
                        "dedupe_key": f"survey_invite:{launch.id}:{sid}",
                        "status": "sent",
                        "attempts": 1,
                        "not_before": created,
                        "sent_at": created,
                        "created_at": created,
                        "telegram_message_id": sid,
                    }
                    for sid in active
                ],
            )
            respondents = rng.sample(active, min(count, len(active)))
            lift = 0.4 * (wave - 1)  # trust grows from round to round
            response_rows = []
            for sid in respondents:
                picks = (
                    rng.sample(supporters, 1)
                    if supporters and rng.random() < 0.35 + 0.1 * wave
                    else []
                )
                picks += rng.sample(ids, rng.randint(0, 2))
                picks = sorted({pick for pick in picks if pick != sid})
                response_rows.append(
                    {
                        "launch_id": launch.id,
                        "survey_id": trust.id,
                        "stakeholder_id": sid,
                        "respondent_key": surveys.respondent_key(salt, launch.id, user_of[sid]),
                        "answers": {
                            "trust_firms": min(5, max(1, round(rng.gauss(2.8 + lift, 1)))),
                            "trust_institutions": min(5, max(1, round(rng.gauss(2.4 + lift, 1)))),
                            "joint_activities": rng.randint(0, 6),
                            "works_with": picks,
                        },
                        "pending": [],
                        "status": "completed",
                        "started_at": created,
                        "updated_at": created,
                        "completed_at": created,
                    }
                )
            await _bulk(session, SurveyResponse, response_rows)
            stored = (
                await session.exec(
                    select(SurveyResponse.id, SurveyResponse.stakeholder_id).where(
                        SurveyResponse.launch_id == launch.id
                    )
                )
            ).all()
            picks_of = {
                row["stakeholder_id"]: row["answers"]["works_with"] for row in response_rows
            }
            await _bulk(
                session,
                LinkageEdge,
                [
                    {
                        "cluster_id": cluster.id,
                        "launch_id": launch.id,
                        "response_id": response_id,
                        "question": "works_with",
                        "source_stakeholder_id": sid,
                        "target_stakeholder_id": target,
                        "created_at": created,
                    }
                    for response_id, sid in stored
                    for target in picks_of[sid]
                ],
            )

        today = now.date()
        statuses = rng.choices(
            ["planned", "in_progress", "done", "cancelled"], weights=[30, 20, 45, 5], k=activities
        )
        activity_rows = []
        for number, status in enumerate(statuses):
            due = today + timedelta(days=rng.randint(-200, 150))
            activity_rows.append(
                {
                    "cluster_id": cluster.id,
                    "year": due.year,
                    "title": {"en": f"Activity {number}", "hi": f"गतिविधि {number}"},
                    "description": {},
                    "category": rng.choice(
                        ["training", "exposure_visit", "joint_marketing", "credit_finance"]
                    ),
                    "start_date": due - timedelta(days=10),
                    "due_date": due,
                    "venue": "Hall",
                    "target": "20 firms",
                    "status": status,
                    "completed_on": due + timedelta(days=rng.randint(-5, 10))
                    if status == "done"
                    else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await _bulk(session, Activity, activity_rows)
        activity_ids = list(
            (
                await session.exec(
                    select(Activity.id)
                    .where(Activity.cluster_id == cluster.id)
                    .order_by(Activity.id)
                )
            ).all()
        )
        await _bulk(
            session,
            ActivityPerson,
            [
                {"activity_id": aid, "stakeholder_id": sid, "role": role, "added_at": now}
                for aid in activity_ids
                for sid, role in zip(
                    rng.sample(ids, 6), ["lead"] + ["participant"] * 5, strict=True
                )
            ],
        )
        await _bulk(
            session,
            CompletionReport,
            [
                {
                    "activity_id": aid,
                    "stakeholder_id": rng.choice(ids),
                    "step": "done",
                    "status": "done",
                    "progress": 100,
                    "done_text": "Done as planned",
                    "participants": rng.randint(5, 40),
                    "photo_file_ids": [f"photo-{aid}"],
                    "state": "submitted",
                    "submitted_at": now,
                    "verified_at": now if rng.random() < 0.5 else None,
                    "created_at": now,
                    "updated_at": now,
                    "extra": {},
                }
                for aid, status in zip(activity_ids, statuses, strict=True)
                if status == "done"
            ],
        )
        meeting_rows = [
            {
                "cluster_id": cluster.id,
                "title": f"Cluster meeting {number}",
                "starts_at": now + timedelta(days=number * 7 - 100),
                "duration_minutes": 120,
                "venue": "Association hall",
                "audience": {},
                "status": "scheduled",
                "revision": 1,
                "created_at": now,
                "updated_at": now,
            }
            for number in range(20)
        ]
        await _bulk(session, Meeting, meeting_rows)
        meeting_ids = list(
            (await session.exec(select(Meeting.id).where(Meeting.cluster_id == cluster.id))).all()
        )
        await _bulk(
            session,
            MeetingInvite,
            [
                {
                    "meeting_id": mid,
                    "stakeholder_id": sid,
                    "response": rng.choice(["yes", "no", "maybe", None]),
                    "invited_at": now,
                }
                for mid in meeting_ids
                for sid in rng.sample(ids, 250)
            ],
        )
        await session.commit()
    return cluster, sum(per_wave) * 4


# ---------------------------------------------------------------- the run


async def prepare(args: argparse.Namespace) -> None:
    """Migrate and fill the database; prints the cluster id and the answer count as JSON.

    Runs in a child process, so what generating allocates is not counted in the measured one."""
    engine = await migrated_engine(args.database_url, reset_postgres=args.reset_postgres)
    try:
        cluster, answers = await generate(
            create_sessionmaker(engine),
            members=args.members,
            answers=args.answers,
            activities=args.activities,
            seed=args.seed,
        )
    finally:
        await engine.dispose()
    print(json.dumps({"cluster_id": cluster.id, "answers": answers}))


async def amain(args: argparse.Namespace) -> int:
    from telegram import Update

    from bot.app import build_application, post_init
    from bot.config import load_settings
    from bot.i18n import Translator
    from bot.services import charts, exports, stats
    from models import Cluster
    from tests.botapi import FakeBotApi, RecordingRequest

    workdir = Path(tempfile.mkdtemp(prefix="bench-reporting-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    print(f"database: {url.split('@')[-1] if '@' in url else url}")
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "bench.reporting",
        "--prepare",
        "--database-url",
        url,
        "--members",
        str(args.members),
        "--answers",
        str(args.answers),
        "--activities",
        str(args.activities),
        "--seed",
        str(args.seed),
    ]
    if args.reset_postgres:
        command.append("--reset-postgres")
    child = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    output, _ = await child.communicate()
    if child.returncode != 0:
        print("generating the data failed", file=sys.stderr)
        return 1
    prepared = json.loads(output.decode().strip().splitlines()[-1])
    print(
        f"generated {args.members:,} stakeholders, {prepared['answers']:,} answers in 3 rounds, {args.activities} "
        f"activities in {time.perf_counter() - started:.1f} s (in a child process)\n"
    )
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        cluster = await session.get(Cluster, prepared["cluster_id"])

    settings = load_settings(
        env_file=None,
        bot_token=TOKEN,
        database_url=url,
        cda_user_ids=str(CDA),
        default_language="en",
        timezone="Asia/Kolkata",
    )
    api = FakeBotApi(token=TOKEN, history_limit=200)
    app = build_application(
        settings,
        request=RecordingRequest(api),
        updates_request=RecordingRequest(api),
        rate_limiter=False,
        background=False,
    )
    await app.initialize()
    await post_init(app)
    if not args.no_freeze:
        # What a long-running bot does once it has started: everything imported and set up so far
        # lives for good, so later collections need not walk it (see the module's notes).
        gc.freeze()
    t = Translator(args.language, cluster.timezone)
    results: list[Result] = []

    async def service_dashboard() -> str:
        async with sessionmaker() as session:
            board = await stats.dashboard(session, cluster=cluster)
        latest = board.network[-1]
        return f"(trust index {board.trust[-1].index:.2f}, {latest.ties:,} ties)"

    async def handler(command: str, method: str) -> str:
        before = len(api.calls)
        await app.process_update(
            Update.de_json(api.make_message(CDA, command, language_code=args.language), app.bot)
        )
        calls = [call for call in api.calls[before:] if call.method == method]
        if not calls:
            raise RuntimeError(f"{command} sent no {method}")
        if method == "sendDocument":
            return f"({len(calls[-1].files['document'][1]) / 1e6:.1f} MB file)"
        return f"({len(calls[-1].params['text']):,} characters)"

    def chart(section: str) -> Callable[[], Awaitable[str]]:
        async def step() -> str:
            async with sessionmaker() as session:
                png = await charts.section_png(session, cluster=cluster, section=section, t=t)
            return f"({len(png) / 1e3:.0f} kB PNG)"

        return step

    def export(fmt: str) -> Callable[[], Awaitable[str]]:
        async def step() -> str:
            async with sessionmaker() as session:
                name, content = await exports.write_export(
                    session, cluster=cluster, fmt=fmt, language=args.language
                )
            (workdir / name).write_bytes(content)
            return f"({len(content) / 1e6:.1f} MB)"

        return step

    try:
        # Warm the imports and caches once, as a running bot would have.
        await service_dashboard()
        results.append(await measure("/stats service", service_dashboard))
        results.append(await measure("/stats handler", lambda: handler("/stats", "sendMessage")))
        for section in charts.SECTIONS:
            results.append(await measure(f"chart: {section}", chart(section)))
        results.append(await measure("export: xlsx", export("xlsx")))
        results.append(await measure("export: csv (zip)", export("csv")))
        results.append(
            await measure("/export handler (xlsx)", lambda: handler("/export", "sendDocument"))
        )
    finally:
        await app.shutdown()
        await app.post_shutdown(app)
        await engine.dispose()
    slow = [result.name for result in results if not result.ok()]
    print()
    print(
        f"goals: each under {GOAL_SECONDS:.0f} s, peak RSS under {GOAL_RSS_MB:.0f} MB, loop never blocked over "
        f"{GOAL_STALL_MS:.0f} ms: {'met' if not slow else 'NOT met by ' + ', '.join(slow)}"
    )
    print(
        f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB; files in {workdir}"
    )
    return 0 if not slow else 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument(
        "--answers", type=int, default=100_000, help="answers in all (four per response)"
    )
    parser.add_argument("--activities", type=int, default=500)
    parser.add_argument(
        "--language", default="hi", help="the CDA's language for labels and the export"
    )
    parser.add_argument(
        "--database-url", help="an async SQLAlchemy URL (default: a temporary SQLite file)"
    )
    parser.add_argument(
        "--reset-postgres", action="store_true", help="drop and recreate the public schema first"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="leave start-up objects to the collector (no gc.freeze())",
    )
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        asyncio.run(prepare(args))
        return 0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
