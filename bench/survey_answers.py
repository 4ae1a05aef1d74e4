"""Survey answers per second: the Cluster Bot against a bare PTB bot, over real HTTP.

N simulated stakeholders (default 200) answer a Q-question survey (default 20: range 1-5
buttons, every fourth question a typed integer) at the same time, through the local Bot API
stand-in (``tests.botapi.BotApiStandIn``). The bot under test runs as its own process --
``python -m bot run``, configured only through the environment (BOT_TOKEN, DATABASE_URL,
TELEGRAM_BASE_URL, TELEGRAM_BASE_FILE_URL) exactly as in production -- and polls the stand-in
over HTTP; this process serves the stand-in and plays the users.

Each user presses the invitation's Start button, then for every question waits for the bot's
question message and answers it: a press on one of its ``sva:...:r<n>`` buttons, or a typed
number for integer questions. Latency is the time from queueing the answer (the update the bot
will fetch with getUpdates) to the bot's next sendMessage to that user (the next question, or
the thank-you). Users answer again as soon as they see the next question (closed loop, no
think time). Throughput is answers / (last reply - first answer).

The baseline, ``bench/bare_bot.py``, is a PTB Application with the same polling settings and
64 concurrent updates, which answers the callback and replies with one message; it is driven
with the same protocol in the same run (one bot at a time, so they do not share the CPU).

Each bot gets ``--budget`` seconds (default 45) of answering: users still in the survey then
stop after their current answer and the figures cover the answers given. A bot that is fast
enough (about 90 answers/s for 200 x 20) finishes the whole survey within the budget.
Diagnostics: ``--ours instrumented`` (SQL and wall-time accounting per update, see
bench/_instrumented_bot.py), ``--ours no-rate-limiter``, ``--bare-rate-limiter``, ``--bare-aiohttp``,
``--profile DIR`` (py-spy), ``--cold-salt``.

    python -m bench.survey_answers                     # 200 users x 20 questions
    python -m bench.survey_answers --users 5 --questions 3   # smoke test, seconds
    python -m bench.survey_answers --database-url postgresql+asyncpg://u:p@host/db --reset-postgres

Exit status: 0 when every user finished (whether or not the ratio goal is met), 1 when the run
broke (a timeout, a wrong reply, a bot that died or never started polling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.botapi import BotApiStandIn, FakeBotApi

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "4242:BENCH-TOKEN"
USER_BASE = 10_000_000
LANGUAGES = ("hi", "ta", "en")
GOAL = 0.70

# The labels are what the bench's stakeholders read; the mix of scripts exercises the catalogs.
RANGE_LABEL = {
    "en": "How satisfied are you with topic {n}?",
    "hi": "विषय {n} से आप कितने संतुष्ट हैं?",
    "ta": "தலைப்பு {n} பற்றி நீங்கள் எவ்வளவு திருப்தியாக உள்ளீர்கள்?",
}
RANGE_HINT = {
    "en": "1 = not at all, 5 = very much",
    "hi": "1 = बिल्कुल नहीं, 5 = बहुत ज़्यादा",
    "ta": "1 = சிறிதும் இல்லை, 5 = மிகவும்",
}
INTEGER_LABEL = {
    "en": "How many workers did you employ in month {n}?",
    "hi": "महीने {n} में आपने कितने कामगार रखे?",
    "ta": "மாதம் {n}-ல் எத்தனை தொழிலாளர்களை வேலைக்கு வைத்தீர்கள்?",
}


# ------------------------------------------------------------------------------------- survey


def question_types(count: int) -> list[str]:
    """Range buttons, with every fourth question typed (15 range + 5 integer for 20)."""
    return ["integer" if i % 4 == 3 else "range" for i in range(count)]


def survey_yaml(count: int) -> str:
    questions = []
    for i, kind in enumerate(question_types(count), start=1):
        q: dict[str, Any] = {"name": f"q{i:02d}", "type": kind, "required": True}
        if kind == "range":
            q.update(start=1, end=5, step=1)
            q["label"] = {k: v.format(n=i) for k, v in RANGE_LABEL.items()}
            q["hint"] = dict(RANGE_HINT)
        else:
            q["label"] = {k: v.format(n=i) for k, v in INTEGER_LABEL.items()}
            q["constraint"] = ". >= 0 and . <= 100000"
        questions.append(q)
    document = {
        "form_id": "bench_survey",
        "version": "1",
        "default_language": "en",
        "anonymous": False,
        "title": {"en": "Benchmark survey", "hi": "बेंचमार्क सर्वेक्षण", "ta": "அளவீட்டு கணக்கெடுப்பு"},
        "description": {
            "en": f"{count} short questions.",
            "hi": f"{count} छोटे सवाल।",
            "ta": f"{count} சிறிய கேள்விகள்.",
        },
        "questions": questions,
    }
    return json.dumps(document, ensure_ascii=False)  # JSON is YAML


# -------------------------------------------------------------------------------------- setup


def language_of(index: int) -> str:
    return LANGUAGES[index % len(LANGUAGES)]


async def prepare_database(
    url: str, *, users: int, questions: int, reset_postgres: bool, cold_salt: bool
) -> int:
    """Migrate, then one cluster, the members, the survey and a launch; returns the launch id."""

    from bench._database import migrated_engine
    from bot.db import create_sessionmaker
    from bot.services.clusters import create_cluster
    from bot.services.stakeholders import register
    from bot.services.surveys import service as surveys
    from bot.services.surveys.loaders import load_yaml_text
    from models.base import utcnow

    engine = await migrated_engine(url, reset_postgres=reset_postgres)
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            cluster = await create_cluster(
                session, name=f"Bench cluster {os.getpid()}-{time.time_ns()}", language="hi"
            )
        for i in range(users):
            async with sessionmaker() as session:
                await register(
                    session,
                    telegram_user_id=USER_BASE + i,
                    chat_id=USER_BASE + i,
                    cluster_id=cluster.id,
                    answers={
                        "name": f"Member {i}",
                        "role": "msme_owner",
                        "product": "brass",
                        "enterprise": f"Works {i}",
                    },
                    language=language_of(i),
                    consent_at=utcnow(),
                )
        async with sessionmaker() as session:
            survey = await surveys.import_survey(
                session,
                cluster=cluster,
                result=load_yaml_text(survey_yaml(questions)),
                source="bench",
            )
            launch, members = await surveys.create_launch(
                session,
                survey=survey,
                audience=surveys.Audience(),
                closes_at=utcnow() + timedelta(days=7),
                created_by=None,
            )
            assert len(members) == users, (len(members), users)
            if not cold_salt:
                # The salt is created on first use; a live bot has had it since its first survey.
                await surveys.respondent_salt(session)
            return launch.id
    finally:
        await engine.dispose()


async def seed_invitations(api: FakeBotApi, launch_id: int | None, users: int) -> dict[int, dict]:
    """The invitation each user received (as the outbox would have sent it), by user id."""
    from bot.i18n import Translator
    from bot.services.surveys.notices import start_button

    invitations = {}
    for i in range(users):
        uid = USER_BASE + i
        markup = start_button(Translator(language_of(i)), launch_id or 0)
        status, body = await api.handle(
            "sendMessage",
            {
                "chat_id": uid,
                "text": "📋 <b>New survey: Benchmark survey</b>",
                "parse_mode": "HTML",
                "reply_markup": markup,
            },
        )
        assert status == 200, body
        invitations[uid] = body["result"]
    return invitations


# ------------------------------------------------------------------------------------ driving


@dataclass
class Result:
    name: str
    users: int
    questions: int
    latencies: list[float] = field(default_factory=list)
    start_latencies: list[float] = field(default_factory=list)
    first_answer: float | None = None
    last_reply: float | None = None
    finished_users: int = 0
    stopped_users: int = 0  # stopped answering at the time budget (not an error)
    budget_hit: bool = False
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)
    api_calls: Counter = field(default_factory=Counter)
    bot_cpu_seconds: float = 0.0
    machine_busy_seconds: float = 0.0  # all processes, all CPUs
    driver_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    log_path: Path | None = None
    returncode: int | None = None

    @property
    def answers(self) -> int:
        return len(self.latencies)

    @property
    def elapsed(self) -> float:
        if self.first_answer is None or self.last_reply is None:
            return 0.0
        return self.last_reply - self.first_answer

    @property
    def rate(self) -> float:
        return self.answers / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def broken(self) -> bool:
        return bool(
            self.timeouts or self.errors or self.finished_users + self.stopped_users != self.users
        )


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Inbox:
    """sendMessage calls per chat, delivered to the waiting user without polling."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.queues: dict[int, asyncio.Queue[tuple[float, dict]]] = {}
        self.ready = asyncio.Event()
        api.on("sendMessage", self._send_message)
        api.on("getUpdates", self._get_updates)

    def queue(self, chat_id: int) -> asyncio.Queue[tuple[float, dict]]:
        return self.queues.setdefault(chat_id, asyncio.Queue())

    def _send_message(self, params: dict, files: dict) -> dict:
        arrived = time.perf_counter()
        message = self.api._send_message(params, files)
        chat = params.get("chat_id")
        if isinstance(chat, int):
            self.queue(chat).put_nowait((arrived, message))
        return message

    async def _get_updates(self, params: dict, files: dict) -> list[dict]:
        if params.get("timeout"):
            self.ready.set()  # the bot is past post_init and long-polling
        return await self.api._get_updates(params, files)


def sva_buttons(message: dict) -> list[tuple[str, str, str]]:
    """(question key, action, callback data) of every survey answer button on a message."""
    found = []
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            data = str(button.get("callback_data") or "")
            if data.startswith("sva:"):
                parts = data.split(":", 3)
                if len(parts) == 4:
                    found.append((parts[2], parts[3], data))
    return found


async def run_user(
    index: int,
    api: FakeBotApi,
    inbox: Inbox,
    invitation: dict,
    result: Result,
    *,
    strict: bool,
    timeout: float,
    rng: random.Random,
    barrier: asyncio.Event,
    deadline: list[float],
) -> None:
    uid = USER_BASE + index
    language = language_of(index)
    kinds = question_types(result.questions)
    queue = inbox.queue(uid)
    await barrier.wait()

    async def next_message(what: str) -> tuple[float, dict] | None:
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            result.timeouts += 1
            result.errors.append(f"user {uid}: no reply within {timeout:.0f}s ({what})")
            return None

    pushed = time.perf_counter()
    api.push_update(
        api.make_callback(
            uid,
            invitation["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            invitation,
            language_code=language,
        )
    )
    # The Cluster Bot sends an introduction before the first question; the question is the
    # first message with answer buttons.
    while True:
        got = await next_message("after Start")
        if got is None:
            return
        arrived, message = got
        if not strict or sva_buttons(message):
            break
    result.start_latencies.append(arrived - pushed)

    for step, kind in enumerate(kinds):
        expected = f"q{step + 1:02d}"
        if deadline and time.perf_counter() > deadline[0]:
            result.stopped_users += 1
            result.budget_hit = True
            return
        buttons = sva_buttons(message)
        if strict and (not buttons or buttons[0][0] != expected):
            result.errors.append(
                f"user {uid}: expected question {expected}, got {message.get('text', '')[:80]!r}"
            )
            return
        if kind == "range":
            choices = [data for _key, action, data in buttons if action.startswith("r")]
            if not choices:
                result.errors.append(
                    f"user {uid}: no range buttons on {message.get('text', '')[:80]!r}"
                )
                return
            update = api.make_callback(uid, rng.choice(choices), message, language_code=language)
        else:
            update = api.make_message(uid, str(rng.randint(1, 250)), language_code=language)
        pushed = time.perf_counter()
        api.push_update(update)
        if result.first_answer is None or pushed < result.first_answer:
            result.first_answer = pushed
        got = await next_message(f"answer to {expected}")
        if got is None:
            return
        arrived, message = got
        result.latencies.append(arrived - pushed)
        result.last_reply = max(result.last_reply or 0.0, arrived)
    if strict and sva_buttons(message):
        result.errors.append(
            f"user {uid}: still asked {message.get('text', '')[:80]!r} after the last answer"
        )
        return
    result.finished_users += 1


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def run_bot(
    name: str,
    command: list[str],
    env: dict[str, str],
    *,
    users: int,
    questions: int,
    launch_id: int | None,
    strict: bool,
    timeout: float,
    workdir: Path,
    seed: int,
    budget: float,
    py_spy: str | None = None,
) -> Result:
    result = Result(name, users, questions)
    api = FakeBotApi(token=TOKEN, history_limit=50_000)
    invitations = await seed_invitations(api, launch_id, users)
    inbox = Inbox(api)
    log_path = workdir / f"{name.replace(' ', '_')}.log"
    result.log_path = log_path
    async with BotApiStandIn(api) as stand_in:
        full_env = {
            **os.environ,
            **env,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": stand_in.base_url,
            "TELEGRAM_BASE_FILE_URL": stand_in.base_file_url,
            "PYTHONUNBUFFERED": "1",
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, env=full_env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            ready = asyncio.create_task(inbox.ready.wait())
            deadline = time.monotonic() + 60.0
            while not ready.done():
                await asyncio.wait({ready}, timeout=0.2)
                if ready.done():
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    ready.cancel()
                    why = (
                        f"exited with {process.returncode}"
                        if process.returncode is not None
                        else "did not poll within 60s"
                    )
                    result.errors.append(f"{name} {why} before polling")
                    return result
            await asyncio.sleep(0.3)  # let start-up work (menus, jobs) settle before the clock
            api.clear()
            api.stats.clear()
            if env.get("BENCH_SQL_COUNTS"):
                process.send_signal(signal.SIGUSR1)  # bench._instrumented_bot: reset the counters
                await asyncio.sleep(0.1)

            barrier = asyncio.Event()
            deadline: list[float] = []
            rng = random.Random(seed)
            tasks = [
                asyncio.create_task(
                    run_user(
                        i,
                        api,
                        inbox,
                        invitations[USER_BASE + i],
                        result,
                        strict=strict,
                        timeout=timeout,
                        rng=random.Random(rng.random()),
                        barrier=barrier,
                        deadline=deadline,
                    )
                )
                for i in range(users)
            ]
            cpu_before, driver_before, wall_before = (
                _cpu_seconds(process.pid),
                time.process_time(),
                time.perf_counter(),
            )
            machine_before = _machine_busy_seconds()
            profiler = None
            if py_spy:
                profile_path = Path(py_spy) / f"{name.replace(' ', '_')}.collapsed.txt"
                profiler = subprocess.Popen(
                    [
                        _py_spy_binary(),
                        "record",
                        "-p",
                        str(process.pid),
                        "-f",
                        "raw",
                        "-r",
                        "250",
                        "--nonblocking",
                        "--gil",
                        "-o",
                        str(profile_path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)  # py-spy attaches
            if budget > 0:
                deadline.append(time.perf_counter() + budget)
            barrier.set()
            await asyncio.gather(*tasks)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                await asyncio.get_running_loop().run_in_executor(None, profiler.wait)
            result.bot_cpu_seconds = _cpu_seconds(process.pid) - cpu_before
            result.machine_busy_seconds = _machine_busy_seconds() - machine_before
            result.driver_cpu_seconds = time.process_time() - driver_before
            result.wall_seconds = time.perf_counter() - wall_before
            for (method, status), count in api.stats.items():
                result.api_calls[(method, status)] += count
            if process.poll() is not None:
                result.errors.append(f"{name} exited with {process.returncode} during the run")
        finally:
            await _stop(process)
            result.returncode = process.returncode
    return result


def _machine_busy_seconds() -> float:
    """CPU seconds all processes used since boot (Linux /proc/stat), 0 elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _py_spy_binary() -> str:
    import shutil

    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not found:
        raise SystemExit(
            "--profile needs py-spy (pip install py-spy; or set PY_SPY=/path/to/py-spy)"
        )
    return found


async def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        for _ in range(150):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        else:
            process.kill()
            await asyncio.sleep(0.1)
            process.poll()


# ------------------------------------------------------------------------------------- report


def describe(result: Result) -> list[str]:
    ms = [x * 1000 for x in result.latencies]
    lines = [
        f"{result.name}:",
        f"  answers/s        {result.rate:9.1f}   ({result.answers} answers in {result.elapsed:.2f}s)",
        f"  latency p50/p95  {percentile(ms, 0.50):9.1f} / {percentile(ms, 0.95):.1f} ms"
        f"   (mean {statistics.fmean(ms) if ms else float('nan'):.1f}, max {max(ms) if ms else float('nan'):.1f})",
        f"  Start -> 1st question p50 {percentile([x * 1000 for x in result.start_latencies], 0.5):.1f} ms",
        f"  users finished   {result.finished_users}/{result.users}   timeouts {result.timeouts}   errors {len(result.errors)}",
    ]
    if result.budget_hit:
        lines.append(
            f"  time budget reached: {result.stopped_users} users stopped answering after --budget; the figures are "
            f"for the {result.answers} answers given (of {result.users * result.questions})"
        )
    if result.answers:
        per = result.answers + len(result.start_latencies)  # the Start presses cost CPU too
        lines.append(
            f"  bot CPU          {result.bot_cpu_seconds:.1f}s = {1000 * result.bot_cpu_seconds / per:.2f} ms/update"
            f" ({100 * result.bot_cpu_seconds / max(result.wall_seconds, 1e-9):.0f}% of a core);"
            f" driver+stand-in CPU {result.driver_cpu_seconds:.1f}s"
        )
        others = result.machine_busy_seconds - result.bot_cpu_seconds - result.driver_cpu_seconds
        if result.wall_seconds > 0 and result.machine_busy_seconds > 0:
            lines.append(
                f"  machine          {100 * result.machine_busy_seconds / result.wall_seconds / (os.cpu_count() or 1):.0f}% busy;"
                f" other processes used {max(others, 0.0) / result.wall_seconds:.2f} CPUs"
                + (
                    "  <- background load: figures are noisy"
                    if others / result.wall_seconds > 0.25
                    else ""
                )
            )
        calls = Counter()
        failed = Counter()
        for (method, status), count in result.api_calls.items():
            calls[method] += count
            if status != 200:
                failed[f"{method} {status}"] += count
        users_starts = result.users  # the Start presses are in the counts too
        total = result.answers + users_starts
        lines.append(
            "  Bot API calls per update: "
            + ", ".join(
                f"{method} {count / total:.2f}"
                for method, count in calls.most_common()
                if method != "getUpdates"
            )
            + f"; getUpdates {calls['getUpdates'] / total:.2f}"
        )
        if failed:
            lines.append(
                "  failed Bot API calls: " + ", ".join(f"{k} x{v}" for k, v in failed.most_common())
            )
    for error in result.errors[:5]:
        lines.append(f"  ! {error}")
    if len(result.errors) > 5:
        lines.append(f"  ! ... and {len(result.errors) - 5} more")
    return lines


def tail(path: Path | None, lines: int = 25) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument(
        "--database-url", help="an async SQLAlchemy URL (default: a temporary SQLite file)"
    )
    parser.add_argument(
        "--reset-postgres", action="store_true", help="drop and recreate the public schema first"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a user waits for one reply"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--budget",
        type=float,
        default=45.0,
        help="seconds of answering per bot; users still in the survey then stop after their current answer "
        "and the figures cover what was answered (0 = no limit; the default keeps a run near 2 minutes)",
    )
    parser.add_argument("--only", choices=("ours", "bare"), help="run one bot only (no ratio)")
    parser.add_argument(
        "--ours",
        choices=("cli", "instrumented", "no-rate-limiter", "instrumented-no-rate-limiter"),
        default="cli",
        help="diagnostics: 'cli' is `python -m bot run` (the measurement); 'instrumented' counts SQL "
        "statements/commits per update; 'no-rate-limiter' runs the same app without AIORateLimiter",
    )
    parser.add_argument(
        "--bare-rate-limiter",
        action="store_true",
        help="diagnostics: give the bare bot the Cluster Bot's AIORateLimiter(max_retries=3)",
    )
    parser.add_argument(
        "--bare-aiohttp",
        action="store_true",
        help="diagnostics: give the bare bot the Cluster Bot's aiohttp transport (bot/http.py) "
        "instead of PTB's default httpx, to see the ratio with the transport factored out",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="diagnostics: sample each bot with py-spy during the run; collapsed stacks go to DIR",
    )
    parser.add_argument(
        "--cold-salt",
        action="store_true",
        help="do not create the respondent salt before the run (the first Starts then race to create it)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (database, logs)"
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.questions < 1:
        parser.error("--users and --questions must be at least 1")
    return args


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-survey-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, {platform.machine()}"
    )
    print(
        f"load: {args.users} users x {args.questions} questions "
        f"({question_types(args.questions).count('range')} range buttons + {question_types(args.questions).count('integer')} typed integers), "
        f"database {url.split('://', 1)[0]}"
    )
    results: list[Result] = []
    started = time.perf_counter()
    try:
        if args.only != "bare":
            launch_id = await prepare_database(
                url,
                users=args.users,
                questions=args.questions,
                reset_postgres=args.reset_postgres,
                cold_salt=args.cold_salt,
            )
            command = {
                "cli": [sys.executable, "-m", "bot", "run"],
                "instrumented": [sys.executable, "-m", "bench._instrumented_bot"],
                "no-rate-limiter": [
                    sys.executable,
                    "-m",
                    "bench._instrumented_bot",
                    "--no-rate-limiter",
                ],
                "instrumented-no-rate-limiter": [
                    sys.executable,
                    "-m",
                    "bench._instrumented_bot",
                    "--no-rate-limiter",
                ],
            }[args.ours]
            env = {"DATABASE_URL": url, "CDA_USER_IDS": "", "PYTHONPATH": str(ROOT)}
            if args.ours.startswith("instrumented"):
                env["BENCH_SQL_COUNTS"] = str(workdir / "sql_counts.json")
            name = "cluster bot" + ("" if args.ours == "cli" else f" [{args.ours}]")
            results.append(
                await run_bot(
                    name,
                    command,
                    env,
                    users=args.users,
                    questions=args.questions,
                    launch_id=launch_id,
                    strict=True,
                    timeout=args.timeout,
                    workdir=workdir,
                    seed=args.seed,
                    budget=args.budget,
                    py_spy=args.profile,
                )
            )
        if args.only != "ours":
            env = {"PYTHONPATH": str(ROOT)}
            if args.bare_rate_limiter:
                env["BARE_RATE_LIMITER"] = "1"
            if args.bare_aiohttp:
                env["BARE_AIOHTTP"] = "1"
            name = (
                "bare PTB"
                + (" [AIORateLimiter]" if args.bare_rate_limiter else "")
                + (" [aiohttp]" if args.bare_aiohttp else "")
            )
            results.append(
                await run_bot(
                    name,
                    [sys.executable, "-m", "bench.bare_bot"],
                    env,
                    users=args.users,
                    questions=args.questions,
                    launch_id=None,
                    strict=False,
                    timeout=args.timeout,
                    workdir=workdir,
                    seed=args.seed,
                    budget=args.budget,
                    py_spy=args.profile,
                )
            )
        print()
        for result in results:
            print("\n".join(describe(result)))
            if result.broken:
                print(f"  --- last lines of {result.log_path} ---")
                print("  " + tail(result.log_path).replace("\n", "\n  "))
        if args.ours.startswith("instrumented") and (workdir / "sql_counts.json").exists():
            print()
            print(instrumented_report(workdir / "sql_counts.json", results[0]))
        if len(results) == 2 and results[1].rate > 0:
            ratio = results[0].rate / results[1].rate
            verdict = "met" if ratio >= GOAL else "MISSED"
            print()
            print(
                f"ratio (cluster bot / bare PTB) answers/s = {ratio:.2f} (goal >= {GOAL:.2f}: {verdict})"
            )
            ours_cpu, bare_cpu = (
                r.bot_cpu_seconds / max(r.answers + len(r.start_latencies), 1) for r in results
            )
            if ours_cpu > 0 and bare_cpu > 0:
                print(
                    f"bot CPU per update: cluster bot {1000 * ours_cpu:.1f} ms, bare PTB {1000 * bare_cpu:.1f} ms"
                    f" (bare / ours = {bare_cpu / ours_cpu:.2f}; less sensitive to background load than answers/s)"
                )
        print(f"total run time {time.perf_counter() - started:.1f}s")
        return 1 if any(r.broken for r in results) else 0
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            for path in sorted(workdir.rglob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    path.unlink() if path.is_file() else path.rmdir()
            with contextlib.suppress(OSError):
                workdir.rmdir()


def instrumented_report(path: Path, result: Result) -> str:
    data = json.loads(path.read_text())
    updates = result.answers + result.users
    lines = [
        f"SQL per update (instrumented run, {updates} updates = {result.answers} answers + {result.users} Starts):"
    ]
    for key in (
        "statements",
        "select",
        "insert",
        "update",
        "delete",
        "commits",
        "connections_checked_out",
        "new_connections",
    ):
        lines.append(f"  {key:<24}{data.get(key, 0) / updates:7.2f}")
    lines.append(
        f"  SQL time in the bot     {data.get('execute_seconds', 0):.2f}s total, "
        f"{1000 * data.get('execute_seconds', 0) / updates:.2f} ms/update (cursor.execute, incl. waits for the DB lock)"
    )
    wall, calls = data.get("wall", {}), data.get("calls", {})
    if wall:
        lines.append(
            "  wall time per update (summed over concurrent updates; DB includes pool waits, API includes rate limiter):"
        )
        for key in sorted(wall, key=lambda k: -wall[k]):
            lines.append(
                f"    {key:<32}{1000 * wall[key] / updates:8.1f} ms/update   {calls.get(key, 0) / updates:5.2f} calls/update"
                f"   {1000 * wall[key] / max(calls.get(key, 1), 1):7.1f} ms/call"
            )
    top = sorted(data.get("by_statement", {}).items(), key=lambda kv: -kv[1])[:12]
    lines.append("  most frequent statements (per update):")
    for sql, count in top:
        lines.append(f"    {count / updates:5.2f}  {sql}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
