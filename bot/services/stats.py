"""The monitoring figures of one cluster: members, survey rounds, the action plan, meetings and the
trust index (the linkage network is in bot.services.network).

Counts and means are computed by the database (GROUP BY, JSON extraction), so the dashboard costs
a handful of small queries whatever the cluster's size; the few column lists that must come back
whole are streamed in partitions so no single step holds the event loop for long.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import network
from models import (
    Activity,
    Cluster,
    CompletionReport,
    Meeting,
    MeetingInvite,
    Membership,
    Stakeholder,
    Survey,
    SurveyInvitation,
    SurveyLaunch,
    SurveyResponse,
)
from models.action_plan import ActivityStatus
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

COMPLETED = "completed"
# Rows per partition: small enough that decoding one keeps the loop busy for a few milliseconds
# even while a worker thread competes for the interpreter.
PARTITION = 500
RECENT_DAYS = 30
# The trust & linkage template's trust questions; any other range question named trust_* counts
# too, so an agency's own edition of the survey keeps feeding the index.
TRUST_QUESTIONS = ("trust_firms", "trust_institutions")
MEETINGS_SHOWN = 10
OVERDUE_SHOWN = 5



async def stream_rows(session: AsyncSession, statement: Select, size: int = PARTITION) -> AsyncIterator[Any]:
    """Rows in partitions: between two partitions the event loop serves other updates."""
    result = await session.stream(statement)
    async for partition in result.partitions(size):
        for row in partition:
            yield row
        await asyncio.sleep(0)


_paused = 0
_was_enabled = True
_pause_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a report is built, in any thread.

    Reading a large cluster's rows allocates fast enough to set off full collections, and a full
    collection walks every live object while holding the interpreter lock: whichever thread
    starts it, the event loop stops for 50-250 ms. A report makes almost no reference cycles and
    what it allocates is freed by reference counting when it is done, so the collector can wait
    the second or two until then. Nested and concurrent uses are counted; the last one out turns
    the collector back on.
    """
    global _paused, _was_enabled
    with _pause_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pause_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


async def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """Run CPU-bound work in a worker thread, with the collector paused (see above)."""

    def run() -> Any:
        with collector_paused():
            return function(*args)

    return await asyncio.to_thread(run)


def local_today(cluster: Cluster) -> date:
    return utcnow().astimezone(ZoneInfo(cluster.timezone)).date()


# ---------------------------------------------------------------- members


@dataclass
class MemberFigures:
    total: int
    by_role: dict[str, int]
    by_language: dict[str, int]
    unreachable: int
    # First day of each month (cluster time) with the members who joined in it, oldest first.
    joined_by_month: list[tuple[date, int]]
    joined_recently: int

    @property
    def unreachable_share(self) -> float:
        return self.unreachable / self.total if self.total else 0.0


def _month(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


async def member_figures(session: AsyncSession, *, cluster: Cluster, today: date | None = None) -> MemberFigures:
    today = today or local_today(cluster)
    rows = (await session.exec(
        select(Stakeholder.role, Stakeholder.language, Stakeholder.status, func.count())
        .join(Membership, col(Membership.stakeholder_id) == Stakeholder.id)
        .where(Membership.cluster_id == cluster.id)
        .group_by(Stakeholder.role, Stakeholder.language, Stakeholder.status)
    )).all()
    by_role: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    unreachable = 0
    for role, language, status, count in rows:
        by_role[role] += int(count)
        by_language[language] += int(count)
        if status == StakeholderStatus.UNREACHABLE:
            unreachable += int(count)
    zone = ZoneInfo(cluster.timezone)
    months: Counter[date] = Counter()
    recent = 0
    since = today - timedelta(days=RECENT_DAYS)
    statement = select(Membership.joined_at).where(Membership.cluster_id == cluster.id)
    async for (joined_at,) in stream_rows(session, statement):
        day = as_utc(joined_at).astimezone(zone).date()
        months[_month(day)] += 1
        if day > since:
            recent += 1
    series: list[tuple[date, int]] = []
    if months:
        month, last = min(months), _month(today)
        while month <= last:
            series.append((month, months.get(month, 0)))
            month = _next_month(month)
    return MemberFigures(
        total=sum(by_role.values()),
        by_role=dict(by_role.most_common()),
        by_language=dict(by_language.most_common()),
        unreachable=unreachable,
        joined_by_month=series,
        joined_recently=recent,
    )


# ---------------------------------------------------------------- survey rounds


@dataclass
class WaveRate:
    launch_id: int
    survey_id: int
    form_id: str
    title: dict[str, str]
    default_language: str
    wave: int
    started_at: datetime
    invited: int
    completed: int

    @property
    def rate(self) -> float:
        return self.completed / self.invited if self.invited else 0.0


async def survey_rates(session: AsyncSession, *, cluster: Cluster) -> list[WaveRate]:
    """Every round of every survey of the cluster, oldest first, with its response rate."""
    invited = dict((await session.exec(
        select(SurveyInvitation.launch_id, func.count())
        .join(SurveyLaunch, col(SurveyLaunch.id) == SurveyInvitation.launch_id)
        .where(SurveyLaunch.cluster_id == cluster.id)
        .group_by(SurveyInvitation.launch_id)
    )).all())
    completed = dict((await session.exec(
        select(SurveyResponse.launch_id, func.count())
        .join(SurveyLaunch, col(SurveyLaunch.id) == SurveyResponse.launch_id)
        .where(SurveyLaunch.cluster_id == cluster.id, SurveyResponse.status == COMPLETED)
        .group_by(SurveyResponse.launch_id)
    )).all())
    rows = (await session.exec(
        select(SurveyLaunch.id, SurveyLaunch.wave, SurveyLaunch.created_at, Survey.id, Survey.form_id,
               Survey.title, Survey.default_language)
        .join(Survey, col(Survey.id) == SurveyLaunch.survey_id)
        .where(SurveyLaunch.cluster_id == cluster.id)
        .order_by(col(SurveyLaunch.created_at), col(SurveyLaunch.id))
    )).all()
    return [
        WaveRate(
            launch_id=launch_id, survey_id=survey_id, form_id=form_id, title=dict(title or {}),
            default_language=default_language, wave=wave, started_at=as_utc(created_at),
            invited=int(invited.get(launch_id, 0)), completed=int(completed.get(launch_id, 0)),
        )
        for launch_id, wave, created_at, survey_id, form_id, title, default_language in rows
    ]


# ---------------------------------------------------------------- action plan


@dataclass
class OverdueActivity:
    id: int
    title: dict[str, str]
    due_date: date


@dataclass
class PlanFigures:
    by_status: dict[str, int]
    done_with_due_date: int
    done_on_time: int
    overdue_count: int
    overdue: list[OverdueActivity]
    reports_received: int
    reports_verified: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def on_time_share(self) -> float | None:
        """Of the activities done that had a due date, the share done on or before it."""
        return self.done_on_time / self.done_with_due_date if self.done_with_due_date else None


OPEN_STATUSES = (ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS)


async def plan_figures(session: AsyncSession, *, cluster: Cluster, today: date | None = None) -> PlanFigures:
    today = today or local_today(cluster)
    counts = dict((await session.exec(
        select(Activity.status, func.count()).where(Activity.cluster_id == cluster.id).group_by(Activity.status)
    )).all())
    by_status = {status.value: int(counts.pop(status.value, 0)) for status in ActivityStatus}
    by_status.update({status: int(n) for status, n in counts.items()})
    done = (
        select(func.count()).select_from(Activity)
        .where(Activity.cluster_id == cluster.id, Activity.status == ActivityStatus.DONE,
               col(Activity.due_date).is_not(None), col(Activity.completed_on).is_not(None))
    )
    with_due = int((await session.exec(done)).one())
    on_time = int((await session.exec(done.where(col(Activity.completed_on) <= col(Activity.due_date)))).one())
    overdue_filter = (
        Activity.cluster_id == cluster.id,
        col(Activity.status).in_(OPEN_STATUSES),
        col(Activity.due_date) < today,
    )
    overdue_count = int((await session.exec(select(func.count()).select_from(Activity).where(*overdue_filter))).one())
    overdue_rows = (await session.exec(
        select(Activity.id, Activity.title, Activity.due_date).where(*overdue_filter)
        .order_by(col(Activity.due_date), col(Activity.id)).limit(OVERDUE_SHOWN)
    )).all()
    reports = (
        select(func.count()).select_from(CompletionReport)
        .join(Activity, col(Activity.id) == CompletionReport.activity_id)
        .where(Activity.cluster_id == cluster.id, CompletionReport.state == "submitted")
    )
    received = int((await session.exec(reports)).one())
    verified = int((await session.exec(reports.where(col(CompletionReport.verified_at).is_not(None)))).one())
    return PlanFigures(
        by_status=by_status,
        done_with_due_date=with_due,
        done_on_time=on_time,
        overdue_count=overdue_count,
        overdue=[OverdueActivity(id_, dict(title or {}), due) for id_, title, due in overdue_rows],
        reports_received=received,
        reports_verified=verified,
    )


# ---------------------------------------------------------------- meetings


@dataclass
class MeetingFigures:
    id: int
    title: str
    starts_at: datetime
    status: str
    invited: int
    yes: int
    no: int
    maybe: int

    @property
    def no_reply(self) -> int:
        return self.invited - self.yes - self.no - self.maybe


async def meeting_figures(session: AsyncSession, *, cluster: Cluster, limit: int = MEETINGS_SHOWN) -> list[MeetingFigures]:
    """The latest meetings (cancelled ones left out), newest first, with their RSVPs."""
    meetings = (await session.exec(
        select(Meeting.id, Meeting.title, Meeting.starts_at, Meeting.status)
        .where(Meeting.cluster_id == cluster.id, Meeting.status != "cancelled")
        .order_by(col(Meeting.starts_at).desc(), col(Meeting.id).desc()).limit(limit)
    )).all()
    if not meetings:
        return []
    tally: dict[int, Counter[str | None]] = {meeting_id: Counter() for meeting_id, *_ in meetings}
    rows = await session.exec(
        select(MeetingInvite.meeting_id, MeetingInvite.response, func.count())
        .where(col(MeetingInvite.meeting_id).in_(list(tally)))
        .group_by(MeetingInvite.meeting_id, MeetingInvite.response)
    )
    for meeting_id, response, count in rows.all():
        tally[meeting_id][response] += int(count)
    return [
        MeetingFigures(
            id=meeting_id, title=title, starts_at=as_utc(starts_at), status=status,
            invited=sum(tally[meeting_id].values()), yes=tally[meeting_id]["yes"],
            no=tally[meeting_id]["no"], maybe=tally[meeting_id]["maybe"],
        )
        for meeting_id, title, starts_at, status in meetings
    ]


# ---------------------------------------------------------------- trust index


@dataclass
class TrustWave:
    form_id: str
    title: dict[str, str]
    default_language: str
    wave: int
    respondents: int
    # Mean answer per trust question (1-5), and the index: the mean of all trust answers.
    means: dict[str, float]
    index: float | None
    change: float | None = None  # against the previous wave of the same survey
    change_from_baseline: float | None = None


def trust_questions(definition: dict[str, Any]) -> list[str]:
    return [
        question["name"] for question in definition.get("questions", [])
        if question["name"] in TRUST_QUESTIONS
        or (question["name"].startswith("trust_") and question["type"] in ("range", "integer", "decimal"))
    ]


async def trust_index(session: AsyncSession, *, cluster: Cluster) -> list[TrustWave]:
    surveys = (await session.exec(
        select(Survey.id, Survey.form_id, Survey.title, Survey.default_language, Survey.definition)
        .where(Survey.cluster_id == cluster.id).order_by(col(Survey.id))
    )).all()
    by_form: dict[str, dict[str, Any]] = {}
    for survey_id, form_id, title, default_language, definition in surveys:
        names = trust_questions(definition)
        if names:
            entry = by_form.setdefault(form_id, {"ids": {}})
            # The newest edition names the survey.
            entry["title"], entry["language"] = title, default_language
            entry["ids"][survey_id] = names
    waves: list[TrustWave] = []
    for form_id, entry in by_form.items():
        names = sorted({name for group in entry["ids"].values() for name in group})
        values = {name: col(SurveyResponse.answers)[name].as_float() for name in names}
        columns = [aggregate for name in names for aggregate in (func.count(values[name]), func.sum(values[name]))]
        rows = (await session.exec(
            select(SurveyLaunch.wave, func.count(), *columns)
            .join(SurveyLaunch, col(SurveyLaunch.id) == SurveyResponse.launch_id)
            .where(col(SurveyResponse.survey_id).in_(list(entry["ids"])), SurveyResponse.status == COMPLETED,
                   SurveyLaunch.cluster_id == cluster.id)
            .group_by(SurveyLaunch.wave).order_by(SurveyLaunch.wave)
        )).all()
        previous: TrustWave | None = None
        baseline: TrustWave | None = None
        for wave, respondents, *aggregates in rows:
            means, total, count = {}, 0.0, 0
            for position, name in enumerate(names):
                n, s = int(aggregates[2 * position] or 0), float(aggregates[2 * position + 1] or 0)
                if n:
                    means[name] = s / n
                    total, count = total + s, count + n
            current = TrustWave(
                form_id=form_id, title=dict(entry["title"] or {}), default_language=entry["language"],
                wave=int(wave), respondents=int(respondents), means=means,
                index=total / count if count else None,
            )
            if current.index is not None:
                if previous is not None:
                    current.change = current.index - previous.index
                if baseline is not None:
                    current.change_from_baseline = current.index - baseline.index
                previous = current
                baseline = baseline or current
            waves.append(current)
    return waves


# ---------------------------------------------------------------- the dashboard


@dataclass
class Dashboard:
    cluster: Cluster
    today: date
    members: MemberFigures
    surveys: list[WaveRate]
    plan: PlanFigures
    meetings: list[MeetingFigures]
    trust: list[TrustWave]
    network: list[network.NetworkWave] = field(default_factory=list)


async def dashboard(session: AsyncSession, *, cluster: Cluster, today: date | None = None) -> Dashboard:
    today = today or local_today(cluster)
    with collector_paused():
        return await _dashboard(session, cluster, today)


async def _dashboard(session: AsyncSession, cluster: Cluster, today: date) -> Dashboard:
    return Dashboard(
        cluster=cluster,
        today=today,
        members=await member_figures(session, cluster=cluster, today=today),
        surveys=await survey_rates(session, cluster=cluster),
        plan=await plan_figures(session, cluster=cluster, today=today),
        meetings=await meeting_figures(session, cluster=cluster),
        trust=await trust_index(session, cluster=cluster),
        network=await off_loop(network.measure, await network.load_linkage(session, cluster=cluster)),
    )
