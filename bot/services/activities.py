"""The yearly action plan: activities, the people on them, announcements, notices and hand-over.

Plain async functions, session first. Texts for other people are rendered per recipient language
and queued in the outbox; nothing here knows about Telegram.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import N_, Translator
from bot.services import audit, outbox
from bot.services.outbox import Draft
from bot.services.surveys import engine
from models import (
    Activity,
    ActivityPerson,
    Cluster,
    Meeting,
    MeetingInvite,
    Membership,
    Stakeholder,
)
from models.action_plan import ActivityCategory, ActivityRole, ActivityStatus
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

CATEGORY_LABELS: dict[str, str] = {
    ActivityCategory.TRAINING: N_("Training"),
    ActivityCategory.EXPOSURE_VISIT: N_("Exposure visit"),
    ActivityCategory.JOINT_MARKETING: N_("Joint marketing"),
    ActivityCategory.TECHNOLOGY_UPGRADE: N_("Technology upgrade"),
    ActivityCategory.CREDIT_FINANCE: N_("Credit and finance"),
    ActivityCategory.COMMON_FACILITY: N_("Common facility"),
    ActivityCategory.TRUST_MEETING: N_("Trust-building meeting"),
    ActivityCategory.OTHER: N_("Other"),
}

STATUS_LABELS: dict[str, str] = {
    ActivityStatus.PLANNED: N_("Planned"),
    ActivityStatus.IN_PROGRESS: N_("In progress"),
    ActivityStatus.DONE: N_("Done"),
    ActivityStatus.CANCELLED: N_("Cancelled"),
}

PERSON_ROLE_LABELS: dict[str, str] = {
    ActivityRole.LEAD: N_("Lead"),
    ActivityRole.PARTICIPANT: N_("Participant"),
    ActivityRole.COORDINATOR: N_("Coordinator"),
}

RSVP_LABELS: dict[str, str] = {"yes": N_("Yes"), "no": N_("No"), "maybe": N_("Maybe")}

OPEN_STATUSES = (ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS)
MAX_TITLE = 200
MAX_SHORT = 200
MAX_DESCRIPTION = 2000
MAX_NOTICE = 2000
MIN_YEAR, MAX_YEAR = 2000, 2100
# Fields a CDA can change one at a time after creating an activity.
EDITABLE = ("year", "title", "category", "description", "start_date", "due_date", "venue", "target")
AUDIENCES = ("all", "role", "language", "participants")


class ActivityProblem(ValueError):
    """Why a value was refused: a msgid and its placeholders, translated by the caller."""

    def __init__(self, msgid: str, **values: Any) -> None:
        super().__init__(msgid.format(**values) if values else msgid)
        self.msgid, self.values = msgid, values

    def text(self, t: Translator) -> str:
        return t(self.msgid).format(**self.values) if self.values else t(self.msgid)


# ---------------------------------------------------------------- values


def text_in(texts: Mapping[str, str] | None, language: str, fallback: str) -> str:
    """The text in this language, else the cluster's, else English, else any."""
    texts = texts or {}
    return texts.get(language) or texts.get(fallback) or texts.get("en") or next(iter(texts.values()), "")


def title_of(activity: Activity, language: str, fallback: str) -> str:
    return text_in(activity.title, language, fallback)


def clean_text(raw: str | None, *, limit: int, multiline: bool = False) -> str:
    if multiline:
        lines = [" ".join(line.split()) for line in (raw or "").strip().splitlines()]
        value = "\n".join(lines).strip()
    else:
        value = " ".join((raw or "").split())
    if not value:
        raise ActivityProblem(N_("Please write an answer; it cannot be empty."))
    if len(value) > limit:
        raise ActivityProblem(N_("Please keep it under {limit} characters."), limit=limit)
    return value


def parse_year(raw: str | int) -> int:
    try:
        year = raw if isinstance(raw, int) else engine.parse_integer(str(raw))
    except engine.InvalidAnswer as problem:
        raise ActivityProblem(problem.msgid or N_("Please write a year, for example 2026.")) from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ActivityProblem(N_("Please write a year between {low} and {high}."), low=MIN_YEAR, high=MAX_YEAR)
    return year


def parse_day(raw: str) -> date:
    try:
        return engine.parse_date(raw)
    except engine.InvalidAnswer:
        raise ActivityProblem(N_("Please write the date as day/month/year, for example 25/12/2026.")) from None


def check_dates(start: date | None, due: date | None) -> None:
    if start is not None and due is not None and due < start:
        raise ActivityProblem(N_("The due date is before the start date. Please give a later date."))


def check_choice(value: str, labels: Mapping[str, str]) -> str:
    if value not in labels:
        raise ActivityProblem(N_("Please choose one of the buttons."))
    return value


# ---------------------------------------------------------------- records


async def is_member(session: AsyncSession, *, stakeholder_id: int, cluster_id: int) -> bool:
    found = await session.exec(
        select(Membership.id).where(Membership.stakeholder_id == stakeholder_id, Membership.cluster_id == cluster_id)
    )
    return found.first() is not None


async def _check_members(session: AsyncSession, cluster_id: int, ids: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(ids))
    for stakeholder_id in ids:
        if not await is_member(session, stakeholder_id=stakeholder_id, cluster_id=cluster_id):
            raise ActivityProblem(N_("That person is not a member of this cluster."))
    return ids


async def create_activity(
    session: AsyncSession,
    *,
    cluster_id: int,
    year: int,
    title: Mapping[str, str],
    category: str = ActivityCategory.OTHER,
    description: Mapping[str, str] | None = None,
    start_date: date | None = None,
    due_date: date | None = None,
    venue: str | None = None,
    target: str | None = None,
    status: str = ActivityStatus.PLANNED,
    leads: Iterable[int] = (),
    participants: Iterable[int] = (),
    actor_user_id: int | None,
    commit: bool = True,
) -> Activity:
    parse_year(year)
    if not any(value for value in title.values()):
        raise ActivityProblem(N_("Please write a title; it cannot be empty."))
    check_choice(category, CATEGORY_LABELS)
    check_choice(status, STATUS_LABELS)
    check_dates(start_date, due_date)
    activity = Activity(
        cluster_id=cluster_id,
        year=year,
        title={k: v for k, v in title.items() if v},
        description={k: v for k, v in (description or {}).items() if v},
        category=category,
        start_date=start_date,
        due_date=due_date,
        venue=venue or None,
        target=target or None,
        status=status,
        completed_on=(due_date or utcnow().date()) if status == ActivityStatus.DONE else None,
        created_by=actor_user_id,
    )
    session.add(activity)
    await session.flush()
    for role, ids in ((ActivityRole.LEAD, leads), (ActivityRole.PARTICIPANT, participants)):
        for stakeholder_id in await _check_members(session, cluster_id, ids):
            session.add(ActivityPerson(activity_id=activity.id, stakeholder_id=stakeholder_id, role=role))
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.create", cluster_id=cluster_id, subject=str(activity.id)
    )
    if commit:
        await session.commit()
    return activity


async def update_activity(
    session: AsyncSession, *, activity: Activity, changes: Mapping[str, Any], actor_user_id: int | None
) -> Activity:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if "year" in changes:
        parse_year(changes["year"])
    if "category" in changes:
        check_choice(changes["category"], CATEGORY_LABELS)
    if "title" in changes and not any((changes["title"] or {}).values()):
        raise ActivityProblem(N_("Please write a title; it cannot be empty."))
    check_dates(changes.get("start_date", activity.start_date), changes.get("due_date", activity.due_date))
    for key, value in changes.items():
        # JSON columns are replaced as a whole, so the ORM notices the change.
        setattr(activity, key, dict(value or {}) if key in ("title", "description") else value)
    activity.updated_at = utcnow()
    session.add(activity)
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.update", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"fields": sorted(changes)},
    )
    await session.commit()
    return activity


async def set_status(
    session: AsyncSession, *, activity: Activity, status: str, actor_user_id: int | None, today: date | None = None
) -> Activity:
    check_choice(status, STATUS_LABELS)
    activity.status = status
    if status == ActivityStatus.DONE:
        activity.completed_on = activity.completed_on or today or utcnow().date()
    else:
        activity.completed_on = None
    activity.updated_at = utcnow()
    session.add(activity)
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.status", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"status": status},
    )
    await session.commit()
    return activity


async def people_ids(session: AsyncSession, *, activity_id: int, role: str) -> list[int]:
    rows = await session.exec(
        select(ActivityPerson.stakeholder_id)
        .where(ActivityPerson.activity_id == activity_id, ActivityPerson.role == role)
        .order_by(col(ActivityPerson.id))
    )
    return list(rows.all())


async def people(
    session: AsyncSession, *, activity_id: int, roles: Iterable[str] | None = None
) -> list[tuple[str, Stakeholder]]:
    """(role, stakeholder) for everyone on an activity, leads first."""
    query = (
        select(ActivityPerson.role, Stakeholder)
        .join(Stakeholder, col(Stakeholder.id) == ActivityPerson.stakeholder_id)
        .where(ActivityPerson.activity_id == activity_id)
        .order_by(col(ActivityPerson.id))
    )
    if roles is not None:
        query = query.where(col(ActivityPerson.role).in_(list(roles)))
    order = list(PERSON_ROLE_LABELS)
    found = [(role, person) for role, person in (await session.exec(query)).all()]
    return sorted(found, key=lambda item: order.index(item[0]) if item[0] in order else len(order))


async def set_people(
    session: AsyncSession, *, activity: Activity, role: str, stakeholder_ids: Iterable[int], actor_user_id: int | None
) -> list[int]:
    """Replace the leads (or the participants) of an activity."""
    if role not in (ActivityRole.LEAD, ActivityRole.PARTICIPANT):
        raise ValueError(role)
    wanted = await _check_members(session, activity.cluster_id, stakeholder_ids)
    current = await people_ids(session, activity_id=activity.id, role=role)
    removed = [i for i in current if i not in wanted]
    if removed:
        await session.exec(
            delete(ActivityPerson).where(
                col(ActivityPerson.activity_id) == activity.id,
                col(ActivityPerson.role) == role,
                col(ActivityPerson.stakeholder_id).in_(removed),
            )
        )
    for stakeholder_id in wanted:
        if stakeholder_id not in current:
            session.add(ActivityPerson(activity_id=activity.id, stakeholder_id=stakeholder_id, role=role))
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.people", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"role": role, "count": len(wanted)},
    )
    await session.commit()
    return wanted


async def set_coordinator(
    session: AsyncSession, *, activity: Activity, stakeholder_id: int | None, actor_user_id: int | None
) -> list[int]:
    """Hand the activity over to one stakeholder (None takes it back); returns who lost the role."""
    if stakeholder_id is not None:
        await _check_members(session, activity.cluster_id, [stakeholder_id])
    current = await people_ids(session, activity_id=activity.id, role=ActivityRole.COORDINATOR)
    removed = [i for i in current if i != stakeholder_id]
    if removed:
        await session.exec(
            delete(ActivityPerson).where(
                col(ActivityPerson.activity_id) == activity.id,
                col(ActivityPerson.role) == ActivityRole.COORDINATOR,
                col(ActivityPerson.stakeholder_id).in_(removed),
            )
        )
    if stakeholder_id is not None and stakeholder_id not in current:
        session.add(ActivityPerson(activity_id=activity.id, stakeholder_id=stakeholder_id, role=ActivityRole.COORDINATOR))
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.coordinator", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"assigned": stakeholder_id is not None, "removed": len(removed)},
    )
    await session.commit()
    return removed


async def coordinator_of(session: AsyncSession, *, activity_id: int) -> Stakeholder | None:
    found = await people(session, activity_id=activity_id, roles=[ActivityRole.COORDINATOR])
    return found[0][1] if found else None


def _sort_key(activity: Activity) -> tuple:
    closed = activity.status in (ActivityStatus.DONE, ActivityStatus.CANCELLED)
    when = activity.start_date or activity.due_date or date.max
    return (closed, when, activity.id or 0)


async def list_activities(session: AsyncSession, *, cluster_id: int) -> list[Activity]:
    """Open activities first, by date; done and cancelled ones after."""
    rows = await session.exec(select(Activity).where(Activity.cluster_id == cluster_id))
    return sorted(rows.all(), key=_sort_key)


async def activities_by_id(session: AsyncSession, *, ids: Iterable[int]) -> list[Activity]:
    ids = list(ids)
    if not ids:
        return []
    rows = await session.exec(select(Activity).where(col(Activity.id).in_(ids)))
    return sorted(rows.all(), key=_sort_key)


async def activities_of(
    session: AsyncSession, *, stakeholder_id: int, roles: Iterable[str]
) -> list[tuple[Activity, set[str]]]:
    """The activities this stakeholder is on in one of these roles, with their roles."""
    rows = await session.exec(
        select(Activity, ActivityPerson.role)
        .join(ActivityPerson, col(ActivityPerson.activity_id) == Activity.id)
        .where(ActivityPerson.stakeholder_id == stakeholder_id, col(ActivityPerson.role).in_(list(roles)))
    )
    found: dict[int, tuple[Activity, set[str]]] = {}
    for activity, role in rows.all():
        found.setdefault(activity.id, (activity, set()))[1].add(role)
    return sorted(found.values(), key=lambda item: _sort_key(item[0]))


# ---------------------------------------------------------------- what others are told


def when_text(t: Translator, activity: Activity) -> str | None:
    start, due = activity.start_date, activity.due_date
    if start and due and start != due:
        return t("{start} to {due}").format(start=t.date(start, "medium"), due=t.date(due, "medium"))
    if start or due:
        return t.date(start or due, "medium")
    return None


def details_lines(t: Translator, activity: Activity, fallback: str, *, description: bool = True) -> list[str]:
    """The facts of an activity, one per line, for any reader."""
    lines = [t("Category: {category}").format(category=escape(t(CATEGORY_LABELS.get(activity.category, N_("Other")))))]
    when = when_text(t, activity)
    if when:
        lines.append(t("When: {dates}").format(dates=when))
    if activity.venue:
        lines.append(t("Venue: {venue}").format(venue=escape(activity.venue)))
    if activity.target:
        lines.append(t("Target: {target}").format(target=escape(activity.target)))
    text = text_in(activity.description, t.language, fallback) if description else ""
    if text:
        lines.append("")
        lines.append(escape(text))
    return lines


def announcement_text(t: Translator, activity: Activity, fallback: str) -> str:
    title = escape(title_of(activity, t.language, fallback))
    lines = [t("📅 <b>Activity: {title}</b>").format(title=title), *details_lines(t, activity, fallback)]
    lines += ["", t("Send /activities to see what is coming up for you.")]
    return "\n".join(lines)


def notice_text(t: Translator, activity: Activity, fallback: str, *, sender: str, text: str) -> str:
    title = escape(title_of(activity, t.language, fallback))
    header = t("📢 <b>Notice about “{title}”</b> from {name}:").format(title=title, name=escape(sender))
    return f"{header}\n\n{escape(text)}"


def handover_text(t: Translator, activity: Activity, fallback: str) -> str:
    title = escape(title_of(activity, t.language, fallback))
    return t(
        "🧭 You are now the coordinator of “{title}”. With /activity you can send notices to its "
        "participants and see its RSVPs and reports."
    ).format(title=title)


async def audience_members(
    session: AsyncSession, *, activity: Activity, kind: str, value: str | None = None
) -> list[Stakeholder]:
    """Reachable recipients: everyone in the cluster, one role, one language, or the activity's people."""
    if kind == "participants":
        found = await people(session, activity_id=activity.id)
        unique = {person.id: person for _, person in found if person.status == StakeholderStatus.ACTIVE}
        return list(unique.values())
    query = (
        select(Stakeholder)
        .join(Membership)
        .where(Membership.cluster_id == activity.cluster_id, Stakeholder.status == StakeholderStatus.ACTIVE)
        .order_by(col(Stakeholder.id))
    )
    if kind == "role":
        query = query.where(Stakeholder.role == value)
    elif kind == "language":
        query = query.where(Stakeholder.language == value)
    elif kind != "all":
        raise ValueError(kind)
    return list((await session.exec(query)).all())


def _drafts(
    members: Iterable[Stakeholder], cluster: Cluster, purpose: str, ref_id: int, key: str | None, render
) -> list[Draft]:
    translators: dict[str, Translator] = {}
    drafts = []
    for member in members:
        t = translators.setdefault(member.language, Translator(member.language, cluster.timezone))
        drafts.append(
            Draft(
                chat_id=member.chat_id, stakeholder_id=member.id, text=render(t), purpose=purpose,
                ref_id=ref_id, dedupe_key=f"{key}:{member.id}" if key else None,
            )
        )
    return drafts


async def announce(
    session: AsyncSession, *, activity: Activity, kind: str, value: str | None, token: str, actor_user_id: int | None
) -> int:
    """Queue the activity's announcement, each in its recipient's language. The token makes a
    repeated confirmation queue nothing twice, while a later announcement is a new one."""
    cluster = await session.get(Cluster, activity.cluster_id)
    members = await audience_members(session, activity=activity, kind=kind, value=value)
    drafts = _drafts(
        members, cluster, "activity_announce", activity.id, f"act_ann:{activity.id}:{token}",
        lambda t: announcement_text(t, activity, cluster.language),
    )
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.announce", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"audience": kind, "recipients": len(drafts)},
    )
    return await outbox.enqueue(session, drafts=drafts)


async def send_notice(
    session: AsyncSession, *, activity: Activity, text: str, sender_name: str, sender_id: int | None,
    token: str, actor_user_id: int | None,
) -> int:
    """A coordinator's (or CDA's) notice to the activity's leads and participants."""
    cluster = await session.get(Cluster, activity.cluster_id)
    text = clean_text(text, limit=MAX_NOTICE, multiline=True)
    members = [m for m in await audience_members(session, activity=activity, kind="participants") if m.id != sender_id]
    drafts = _drafts(
        members, cluster, "activity_notice", activity.id, f"act_ntc:{activity.id}:{token}",
        lambda t: notice_text(t, activity, cluster.language, sender=sender_name, text=text),
    )
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.notice", cluster_id=activity.cluster_id,
        subject=str(activity.id), detail={"recipients": len(drafts)},
    )
    return await outbox.enqueue(session, drafts=drafts)


async def handover_drafts(session: AsyncSession, *, activity: Activity, stakeholder: Stakeholder) -> list[Draft]:
    cluster = await session.get(Cluster, activity.cluster_id)
    return _drafts(
        [stakeholder], cluster, "activity_handover", activity.id, None,
        lambda t: handover_text(t, activity, cluster.language),
    )


# ---------------------------------------------------------------- RSVPs (meetings of an activity)


@dataclass
class MeetingRsvps:
    meeting: Meeting
    counts: dict[str, int] = field(default_factory=dict)
    answers: list[tuple[str, str | None]] = field(default_factory=list)  # (name, response)


async def rsvps(session: AsyncSession, *, activity: Activity, actor_user_id: int | None) -> list[MeetingRsvps]:
    """Meetings called for this activity and who answered what. Looking is logged: a coordinator
    sees names of people who are not theirs to manage otherwise."""
    meetings = await session.exec(
        select(Meeting).where(Meeting.activity_id == activity.id).order_by(col(Meeting.starts_at))
    )
    found = []
    for meeting in meetings.all():
        item = MeetingRsvps(meeting, counts={"yes": 0, "no": 0, "maybe": 0, "none": 0})
        invites = await session.exec(
            select(MeetingInvite.response, Stakeholder.name)
            .join(Stakeholder, col(Stakeholder.id) == MeetingInvite.stakeholder_id)
            .where(MeetingInvite.meeting_id == meeting.id)
            .order_by(col(Stakeholder.name))
        )
        for response, name in invites.all():
            item.counts[response if response in RSVP_LABELS else "none"] += 1
            item.answers.append((name, response if response in RSVP_LABELS else None))
        found.append(item)
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.rsvps.view", cluster_id=activity.cluster_id,
        subject=str(activity.id),
    )
    await session.commit()
    return found


# ---------------------------------------------------------------- /activities


@dataclass
class Upcoming:
    kind: str  # activity | meeting
    sort_at: datetime
    activity: Activity | None = None
    meeting: Meeting | None = None
    roles: set[str] = field(default_factory=set)
    response: str | None = None
    fallback: str = "en"
    timezone: str = "Asia/Kolkata"


def _activity_moment(activity: Activity, zone) -> datetime:
    day = activity.start_date or activity.due_date or date.max - timedelta(days=1)
    return datetime.combine(day, datetime.min.time(), zone)


async def upcoming_for(
    session: AsyncSession,
    *,
    stakeholder: Stakeholder | None,
    cluster_ids: Iterable[int] = (),
    today: date,
    now: datetime | None = None,
    limit: int = 30,
) -> list[Upcoming]:
    """What is coming up for one person: open activities they are on or that are for the whole
    cluster (no participant list), and scheduled meetings they are invited to. A CDA without a
    stakeholder record sees everything open in their clusters."""
    now = now or utcnow()
    clusters: dict[int, Cluster] = {}
    mine: dict[int, set[str]] = {}
    if stakeholder is not None:
        rows = await session.exec(select(Cluster).join(Membership).where(Membership.stakeholder_id == stakeholder.id))
        clusters = {cluster.id: cluster for cluster in rows.all()}
        for activity, roles in await activities_of(session, stakeholder_id=stakeholder.id, roles=PERSON_ROLE_LABELS):
            mine[activity.id] = roles
    for cluster_id in cluster_ids:
        if cluster_id not in clusters and (cluster := await session.get(Cluster, cluster_id)) is not None:
            clusters[cluster.id] = cluster
    if not clusters:
        return []
    open_rows = await session.exec(
        select(Activity).where(col(Activity.cluster_id).in_(list(clusters)), col(Activity.status).in_(list(OPEN_STATUSES)))
    )
    with_participants = set(
        (
            await session.exec(
                select(ActivityPerson.activity_id)
                .join(Activity, col(Activity.id) == ActivityPerson.activity_id)
                .where(ActivityPerson.role == ActivityRole.PARTICIPANT, col(Activity.cluster_id).in_(list(clusters)))
                .distinct()
            )
        ).all()
    )
    see_all = stakeholder is None
    items: list[Upcoming] = []
    for activity in open_rows.all():
        last_day = activity.due_date or activity.start_date
        if last_day is not None and last_day < today:
            continue
        relevant = see_all or activity.id in mine or activity.id not in with_participants
        if not relevant:
            continue
        cluster = clusters[activity.cluster_id]
        items.append(
            Upcoming("activity", _activity_moment(activity, ZoneInfo(cluster.timezone)), activity=activity,
                     roles=mine.get(activity.id, set()), fallback=cluster.language, timezone=cluster.timezone)
        )
    if stakeholder is not None:
        meetings = await session.exec(
            select(Meeting, MeetingInvite.response)
            .join(MeetingInvite, col(MeetingInvite.meeting_id) == Meeting.id)
            .where(MeetingInvite.stakeholder_id == stakeholder.id, Meeting.status == "scheduled")
        )
        pairs = list(meetings.all())
    else:
        meetings = await session.exec(
            select(Meeting).where(col(Meeting.cluster_id).in_(list(clusters)), Meeting.status == "scheduled")
        )
        pairs = [(meeting, None) for meeting in meetings.all()]
    for meeting, response in pairs:
        starts = as_utc(meeting.starts_at)
        if starts + timedelta(minutes=meeting.duration_minutes or 0) < now:
            continue
        cluster = clusters.get(meeting.cluster_id)
        items.append(Upcoming("meeting", starts, meeting=meeting, response=response,
                              fallback=cluster.language if cluster else "en",
                              timezone=cluster.timezone if cluster else "Asia/Kolkata"))
    items.sort(key=lambda item: item.sort_at)
    return items[:limit]
