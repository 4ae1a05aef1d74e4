"""Meetings: calling one, RSVPs, reminders as rows, rescheduling and cancelling.

Everything sent to invitees is rendered here per recipient language and goes through the outbox
with a dedupe key, so a retried action or a restarted job never notifies anyone twice:

| purpose | dedupe key |
| --- | --- |
| ``meeting_invite`` | ``meeting_invite:<meeting>:<stakeholder>`` |
| ``meeting_update`` | ``meeting_update:<meeting>:<revision>:<stakeholder>`` |
| ``meeting_cancel`` | ``meeting_cancel:<meeting>:<stakeholder>`` |
| ``meeting_reminder`` | ``meeting_reminder:<meeting>:<revision>:<kind>:<stakeholder>`` |

Buttons on those messages carry ids and are checked again when pressed: ``mtr:<invite>:<y|n|m>``
answers, ``mtc:<invite>`` asks for the calendar file, ``mtt:<meeting>`` refreshes a tally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from html import escape
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_time
from sqlalchemy import func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionMaker
from bot.i18n import N_, Translator
from bot.services import audit, ics, outbox
from bot.services.outbox import Draft
from bot.services.settings_store import get_value, set_value
from bot.services.surveys.engine import InvalidAnswer, normalise_digits, parse_date
from models import (
    Activity,
    ActivityPerson,
    Cluster,
    Meeting,
    MeetingInvite,
    MeetingReminder,
    Membership,
    OutboxMessage,
    OutboxStatus,
    Stakeholder,
)
from models.action_plan import ActivityStatus
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

RSVP_PREFIX = "mtr"
CALENDAR_PREFIX = "mtc"
TALLY_PREFIX = "mtt"

SCHEDULED, CANCELLED = "scheduled", "cancelled"
RESPONSES = ("yes", "no", "maybe")
RESPONSE_CODES = {"y": "yes", "n": "no", "m": "maybe"}
RESPONSE_LABELS = {"yes": N_("✅ Yes"), "no": N_("❌ No"), "maybe": N_("🤔 Maybe")}

INVITE, UPDATE, CANCEL, REMINDER = "meeting_invite", "meeting_update", "meeting_cancel", "meeting_reminder"
CALENDAR_PURPOSES = (INVITE, UPDATE, CANCEL)
# Earliest first: when the bot was down across both, only the later one is still worth sending.
REMINDER_OFFSETS = {"24h": timedelta(hours=24), "2h": timedelta(hours=2)}

MAX_TITLE, MAX_VENUE, MAX_AGENDA = 200, 300, 1500
# Further ahead than this is almost always a mistyped year.
MAX_AHEAD = timedelta(days=366)
TIME_OF_DAY = re.compile(r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})\s*(?P<half>[ap]\.?m\.?)?", re.IGNORECASE)
TALLY_KEY = "meeting_tally:{meeting_id}"
MEETING_CANCELLED = N_("This meeting was cancelled.")
MEETING_STARTED = N_("This meeting has already started.")
SAME_TIME = N_("The meeting is already at that time.")


@dataclass
class MeetingError(Exception):
    """Why a request was refused: a catalog msgid and its values."""

    msgid: str
    values: dict[str, Any] = field(default_factory=dict)

    def render(self, t: Translator) -> str:
        return t(self.msgid).format(**self.values) if self.values else t(self.msgid)


# ---------------------------------------------------------------- typed answers


def parse_text(raw: str, *, limit: int) -> str:
    text = (raw or "").strip()
    if not text:
        raise MeetingError(N_("Please write an answer; it cannot be empty."))
    if len(text) > limit:
        raise MeetingError(N_("Please keep it under {limit} characters."), {"limit": limit})
    return text


def example_time(timezone: str, now: datetime | None = None) -> str:
    day = (now or utcnow()).astimezone(ZoneInfo(timezone)).date() + timedelta(days=7)
    return f"{day:%d/%m/%Y} 17:30"


def parse_starts_at(raw: str, *, timezone: str, now: datetime | None = None) -> datetime:
    """A typed local date and time ("25/12/2026 17:30", "२५/१२/२०२६ 5:30 pm") as UTC."""
    now = now or utcnow()
    wrong = MeetingError(
        N_("Please write the date and time as day/month/year hours:minutes, for example {example}."),
        {"example": example_time(timezone, now)},
    )
    parts = normalise_digits(raw or "").strip().split(None, 1)
    match = TIME_OF_DAY.fullmatch(parts[1].strip()) if len(parts) == 2 else None
    if match is None:
        raise wrong
    try:
        day = parse_date(parts[0])
    except InvalidAnswer:
        raise wrong from None
    hour, minute = int(match["hour"]), int(match["minute"])
    if match["half"]:
        if not 1 <= hour <= 12:
            raise wrong
        hour = hour % 12 + (12 if match["half"].lower().startswith("p") else 0)
    if hour > 23 or minute > 59:
        raise wrong
    starts = datetime.combine(day, time(hour, minute), ZoneInfo(timezone)).astimezone(UTC)
    if starts <= now:
        raise MeetingError(N_("That time has already passed. Please give a time in the future."))
    if starts > now + MAX_AHEAD:
        raise MeetingError(N_("That is more than a year away. Please check the year."))
    return starts


# ---------------------------------------------------------------- audiences


@dataclass(frozen=True)
class Audience:
    kind: str = "all"  # all | role | language | activity
    value: str | int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


async def audience_members(session: AsyncSession, *, cluster_id: int, audience: Audience) -> list[Stakeholder]:
    """Reachable members of the cluster in the audience (an activity's people: leads,
    participants and its coordinator)."""
    query = (
        select(Stakeholder)
        .join(Membership, col(Membership.stakeholder_id) == Stakeholder.id)
        .where(Membership.cluster_id == cluster_id, Stakeholder.status == StakeholderStatus.ACTIVE)
        .order_by(col(Stakeholder.id))
    )
    if audience.kind == "role":
        query = query.where(Stakeholder.role == audience.value)
    elif audience.kind == "language":
        query = query.where(Stakeholder.language == audience.value)
    elif audience.kind == "activity":
        people = select(ActivityPerson.stakeholder_id).where(ActivityPerson.activity_id == int(audience.value))
        query = query.where(col(Stakeholder.id).in_(people))
    return list((await session.exec(query)).all())


async def open_activities(session: AsyncSession, *, cluster_id: int, limit: int = 20) -> list[Activity]:
    """Activities a meeting can belong to: planned or running ones of the cluster."""
    result = await session.exec(
        select(Activity)
        .where(
            Activity.cluster_id == cluster_id,
            col(Activity.status).in_([ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS]),
        )
        .order_by(col(Activity.year).desc(), col(Activity.start_date), col(Activity.id))
        .limit(limit)
    )
    return list(result.all())


def activity_title(activity: Activity, language: str, fallback: str) -> str:
    titles = activity.title or {}
    return titles.get(language) or titles.get(fallback) or next(iter(titles.values()), "") or f"#{activity.id}"


async def activity_of_cluster(session: AsyncSession, *, activity_id: int, cluster_id: int) -> Activity | None:
    activity = await session.get(Activity, activity_id)
    return activity if activity is not None and activity.cluster_id == cluster_id else None


# ---------------------------------------------------------------- rendering for invitees


def when_text(t: Translator, moment: datetime) -> str:
    moment = as_utc(moment)
    return t("{date} at {time}").format(
        date=t.date(moment, "full"), time=format_time(moment, "short", tzinfo=t.zone, locale=t.locale)
    )


def response_label(t: Translator, response: str | None) -> str:
    return t(RESPONSE_LABELS[response]) if response in RESPONSE_LABELS else t("no answer yet")


HEADERS = {
    INVITE: N_("📅 <b>Meeting: {title}</b>"),
    UPDATE: N_("🔄 <b>Meeting moved: {title}</b>"),
    CANCEL: N_("❌ <b>Meeting cancelled: {title}</b>"),
    REMINDER: N_("⏰ <b>Reminder: {title}</b>"),
}


def notice_text(
    t: Translator,
    meeting: Meeting,
    *,
    kind: str = INVITE,
    response: str | None = None,
    previous_starts_at: datetime | None = None,
    answered: bool = False,
) -> str:
    """What an invitee reads; ``answered`` after they pressed a button on it."""
    lines = [t(HEADERS[kind]).format(title=escape(meeting.title)), ""]
    lines.append(t("When: {when}").format(when=when_text(t, meeting.starts_at)))
    if previous_starts_at is not None:
        lines.append(t("Before: {when}").format(when=when_text(t, previous_starts_at)))
    if meeting.venue:
        lines.append(t("Where: {venue}").format(venue=escape(meeting.venue)))
    if meeting.latitude is not None and meeting.longitude is not None:
        link = f"https://maps.google.com/?q={meeting.latitude:.6f},{meeting.longitude:.6f}"
        label = escape(t("Open the map"))
        lines.append(f'📍 <a href="{link}">{label}</a>')
    if meeting.agenda and kind != CANCEL:
        heading = escape(t("Agenda:"))
        lines += ["", f"<b>{heading}</b>", escape(meeting.agenda)]
    lines.append("")
    if kind == CANCEL:
        lines.append(t("The meeting will not take place."))
    elif answered:
        lines.append(t("Your answer: {answer}. You can change it with the buttons below.").format(answer=response_label(t, response)))
    elif response:
        lines.append(t("Your answer so far: {answer}. Press a button to change it.").format(answer=response_label(t, response)))
    else:
        lines.append(t("Will you come? Please answer with a button below."))
    return "\n".join(lines)


def notice_markup(t: Translator, *, invite_id: int, cancelled: bool = False) -> dict[str, Any]:
    """Telegram's InlineKeyboardMarkup as JSON: stored in the outbox as it is."""
    if cancelled:
        return {"inline_keyboard": [[{"text": t("📅 Remove from calendar"), "callback_data": f"{CALENDAR_PREFIX}:{invite_id}"}]]}
    answers = [
        {"text": t(RESPONSE_LABELS[response]), "callback_data": f"{RSVP_PREFIX}:{invite_id}:{code}"}
        for code, response in RESPONSE_CODES.items()
    ]
    calendar = [{"text": t("📅 Add to calendar"), "callback_data": f"{CALENDAR_PREFIX}:{invite_id}"}]
    return {"inline_keyboard": [answers, calendar]}


def _drafts(
    meeting: Meeting,
    rows: Iterable[tuple[MeetingInvite, Stakeholder]],
    *,
    timezone: str,
    purpose: str,
    key: str,
    previous_starts_at: datetime | None = None,
    organizer: str | None = None,
) -> list[Draft]:
    translators: dict[str, Translator] = {}
    drafts = []
    for invite, member in rows:
        t = translators.setdefault(member.language, Translator(member.language, timezone))
        drafts.append(
            Draft(
                chat_id=member.chat_id,
                stakeholder_id=member.id,
                text=notice_text(t, meeting, kind=purpose, response=invite.response, previous_starts_at=previous_starts_at),
                purpose=purpose,
                ref_id=meeting.id,
                reply_markup=notice_markup(t, invite_id=invite.id, cancelled=purpose == CANCEL),
                dedupe_key=f"{purpose}:{key}:{member.id}",
            )
        )
        if organizer is not None and purpose in CALENDAR_PURPOSES:
            # The calendar file travels with the notice, so phones that open .ics files can add,
            # move or remove the meeting at once (SEQUENCE follows the revision).
            attendee = ics.Attendee(member.name, f"tg://user?id={member.telegram_user_id}", invite.response)
            drafts.append(
                Draft(
                    chat_id=member.chat_id,
                    stakeholder_id=member.id,
                    text=t("Open this file to remove the meeting from your calendar.")
                    if purpose == CANCEL
                    else t("Open this file to add the meeting to your calendar."),
                    purpose=purpose,
                    ref_id=meeting.id,
                    attachment=outbox.file_attachment(
                        ics.file_name(meeting), ics.meeting_calendar(meeting, organizer=organizer, attendee=attendee)
                    ),
                    dedupe_key=f"{purpose}:{key}:{member.id}:ics",
                )
            )
    return drafts


# ---------------------------------------------------------------- calling a meeting


def _reminders(meeting: Meeting, now: datetime) -> list[MeetingReminder]:
    # A reminder whose time has already come when the meeting is called (a meeting tomorrow
    # morning has no 24-hour reminder) would only repeat the notice.
    starts = as_utc(meeting.starts_at)
    return [
        MeetingReminder(meeting_id=meeting.id, revision=meeting.revision, kind=kind, due_at=starts - offset)
        for kind, offset in REMINDER_OFFSETS.items()
        if starts - offset > now
    ]


async def create_meeting(
    session: AsyncSession,
    *,
    cluster: Cluster,
    title: str,
    starts_at: datetime,
    venue: str,
    agenda: str,
    audience: Audience,
    latitude: float | None = None,
    longitude: float | None = None,
    activity_id: int | None = None,
    created_by: int | None = None,
    now: datetime | None = None,
) -> tuple[Meeting, int]:
    """The meeting, an invite per audience member, its reminders and the notices, in one
    transaction. Returns the meeting and how many people were invited."""
    now = now or utcnow()
    if as_utc(starts_at) <= now:
        raise MeetingError(N_("That time has already passed. Please give a time in the future."))
    if activity_id is not None and await activity_of_cluster(session, activity_id=activity_id, cluster_id=cluster.id) is None:
        raise MeetingError(N_("That activity is not in this cluster."))
    if audience.kind == "activity" and await activity_of_cluster(session, activity_id=int(audience.value), cluster_id=cluster.id) is None:
        raise MeetingError(N_("That activity is not in this cluster."))
    members = await audience_members(session, cluster_id=cluster.id, audience=audience)
    if not members:
        raise MeetingError(N_("No one is in this audience yet. Please choose another."))
    meeting = Meeting(
        cluster_id=cluster.id, activity_id=activity_id, title=title, starts_at=starts_at, venue=venue,
        latitude=latitude, longitude=longitude, agenda=agenda, audience=audience.as_dict(), created_by=created_by,
    )
    session.add(meeting)
    await session.flush()
    invites = [MeetingInvite(meeting_id=meeting.id, stakeholder_id=member.id) for member in members]
    session.add_all(invites)
    session.add_all(_reminders(meeting, now))
    await session.flush()
    audit.record(
        session, actor_user_id=created_by, action="meeting.create", cluster_id=cluster.id, subject=f"meeting:{meeting.id}",
        detail={"audience": audience.kind, "invited": len(members), "activity_linked": activity_id is not None,
                "location": latitude is not None},
    )
    drafts = _drafts(
        meeting, zip(invites, members, strict=True), timezone=cluster.timezone, purpose=INVITE, key=str(meeting.id),
        organizer=cluster.name,
    )
    await outbox.enqueue(session, drafts=drafts)
    await session.commit()
    return meeting, len(members)


# ---------------------------------------------------------------- finding meetings


def has_started(meeting: Meeting, now: datetime | None = None) -> bool:
    return as_utc(meeting.starts_at) <= (now or utcnow())


async def upcoming_meetings(
    session: AsyncSession, *, cluster_ids: list[int], now: datetime | None = None, limit: int = 10
) -> list[Meeting]:
    if not cluster_ids:
        return []
    result = await session.exec(
        select(Meeting)
        .where(col(Meeting.cluster_id).in_(cluster_ids), Meeting.status == SCHEDULED, Meeting.starts_at > (now or utcnow()))
        .order_by(col(Meeting.starts_at), col(Meeting.id))
        .limit(limit)
    )
    return list(result.all())


async def meetings_of_activity(session: AsyncSession, *, activity_id: int) -> list[Meeting]:
    """Every meeting linked to an activity, cancelled ones too, soonest first."""
    result = await session.exec(
        select(Meeting).where(Meeting.activity_id == activity_id).order_by(col(Meeting.starts_at), col(Meeting.id))
    )
    return list(result.all())


async def meetings_for_stakeholder(
    session: AsyncSession, *, stakeholder_id: int, now: datetime | None = None
) -> list[tuple[Meeting, MeetingInvite]]:
    """Upcoming meetings this person is invited to, with their invite (for /activities)."""
    result = await session.exec(
        select(Meeting, MeetingInvite)
        .join(MeetingInvite, col(MeetingInvite.meeting_id) == Meeting.id)
        .where(MeetingInvite.stakeholder_id == stakeholder_id, Meeting.status == SCHEDULED, Meeting.starts_at > (now or utcnow()))
        .order_by(col(Meeting.starts_at))
    )
    return list(result.all())


def may_manage(meeting: Meeting | None, *, cda_cluster_ids: Iterable[int]) -> bool:
    return meeting is not None and meeting.cluster_id in set(cda_cluster_ids)


def may_view(meeting: Meeting | None, *, cda_cluster_ids: Iterable[int], coordinated_activity_ids: Iterable[int]) -> bool:
    """The CDA of its cluster, or the coordinator of the activity it belongs to (read only)."""
    if meeting is None:
        return False
    return may_manage(meeting, cda_cluster_ids=cda_cluster_ids) or (
        meeting.activity_id is not None and meeting.activity_id in set(coordinated_activity_ids)
    )


# ---------------------------------------------------------------- RSVPs


async def rsvp_tally(session: AsyncSession, *, meeting_id: int) -> dict[str, int]:
    """Counts of answers: invited, yes, no, maybe and pending (no answer yet)."""
    rows = await session.exec(
        select(MeetingInvite.response, func.count()).where(MeetingInvite.meeting_id == meeting_id).group_by(MeetingInvite.response)
    )
    counts = {response: int(n) for response, n in rows.all()}
    tally = {response: counts.get(response, 0) for response in RESPONSES}
    tally["pending"] = counts.get(None, 0)
    tally["invited"] = sum(counts.values())
    return tally


async def names_by_response(
    session: AsyncSession, *, meeting_id: int, response: str, limit: int = 20
) -> list[str]:
    result = await session.exec(
        select(Stakeholder.name)
        .join(MeetingInvite, col(MeetingInvite.stakeholder_id) == Stakeholder.id)
        .where(MeetingInvite.meeting_id == meeting_id, MeetingInvite.response == response)
        .order_by(col(MeetingInvite.responded_at), col(MeetingInvite.id))
        .limit(limit)
    )
    return list(result.all())


async def own_invite(
    session: AsyncSession, *, invite_id: int, stakeholder_id: int | None
) -> tuple[Meeting, MeetingInvite]:
    """The invite and its meeting, if it was sent to this stakeholder; refused otherwise."""
    invite = await session.get(MeetingInvite, invite_id)
    if invite is None or stakeholder_id is None or invite.stakeholder_id != stakeholder_id:
        raise MeetingError(N_("This invitation is not for you."))
    return await session.get(Meeting, invite.meeting_id), invite


async def record_rsvp(
    session: AsyncSession,
    *,
    invite_id: int,
    stakeholder_id: int | None,
    response: str,
    actor_user_id: int,
    now: datetime | None = None,
) -> tuple[Meeting, MeetingInvite]:
    if response not in RESPONSES:
        raise MeetingError(N_("This question is no longer open."))
    try:
        meeting, invite = await own_invite(session, invite_id=invite_id, stakeholder_id=stakeholder_id)
    except MeetingError:
        audit.record(session, actor_user_id=actor_user_id, action="refused", subject=f"meeting_invite:{invite_id}")
        await session.commit()
        raise
    if meeting.status == CANCELLED:
        raise MeetingError(MEETING_CANCELLED)
    if has_started(meeting, now):
        raise MeetingError(MEETING_STARTED)
    changed = invite.response != response
    invite.response, invite.responded_at = response, now or utcnow()
    session.add(invite)
    if changed:
        audit.record(
            session, actor_user_id=actor_user_id, action="meeting.rsvp", cluster_id=meeting.cluster_id,
            subject=f"meeting:{meeting.id}", detail={"fields": ["response"]},
        )
    await session.commit()
    return meeting, invite


# ---------------------------------------------------------------- rescheduling and cancelling


async def _skip_queued(session: AsyncSession, *, meeting_id: int, purposes: Iterable[str], reason: str) -> None:
    """Messages not yet sent that would now tell an old time, or a meeting that will not happen."""
    await session.exec(
        update(OutboxMessage)
        .where(
            OutboxMessage.ref_id == meeting_id,
            col(OutboxMessage.purpose).in_(list(purposes)),
            OutboxMessage.status == OutboxStatus.QUEUED,
        )
        .values(status=OutboxStatus.SKIPPED, last_error=reason)
    )


async def _close_reminders(session: AsyncSession, *, meeting_id: int, now: datetime) -> None:
    await session.exec(
        update(MeetingReminder)
        .where(MeetingReminder.meeting_id == meeting_id, col(MeetingReminder.done_at).is_(None))
        .values(done_at=now)
    )


async def _invitees(
    session: AsyncSession, *, meeting_id: int, responses: Iterable[str | None] | None = None
) -> list[tuple[MeetingInvite, Stakeholder]]:
    query = (
        select(MeetingInvite, Stakeholder)
        .join(Stakeholder, col(Stakeholder.id) == MeetingInvite.stakeholder_id)
        .where(MeetingInvite.meeting_id == meeting_id, Stakeholder.status == StakeholderStatus.ACTIVE)
        .order_by(col(MeetingInvite.id))
    )
    if responses is not None:
        query = query.where(col(MeetingInvite.response).in_(list(responses)))
    return list((await session.exec(query)).all())


def _check_changeable(meeting: Meeting, now: datetime) -> None:
    if meeting.status == CANCELLED:
        raise MeetingError(MEETING_CANCELLED)
    if has_started(meeting, now):
        raise MeetingError(MEETING_STARTED)


async def reschedule_meeting(
    session: AsyncSession, *, meeting: Meeting, starts_at: datetime, actor_user_id: int | None, now: datetime | None = None
) -> int:
    """Move the meeting: a new revision with its own reminders, and a notice to everyone
    invited (answers are kept; each notice shows it). Returns how many notices were queued."""
    now = now or utcnow()
    _check_changeable(meeting, now)
    if as_utc(starts_at) <= now:
        raise MeetingError(N_("That time has already passed. Please give a time in the future."))
    if as_utc(starts_at) == as_utc(meeting.starts_at):
        raise MeetingError(SAME_TIME)
    previous = as_utc(meeting.starts_at)
    meeting.starts_at, meeting.revision, meeting.updated_at = starts_at, meeting.revision + 1, now
    session.add(meeting)
    await _close_reminders(session, meeting_id=meeting.id, now=now)
    await _skip_queued(session, meeting_id=meeting.id, purposes=(INVITE, UPDATE, REMINDER), reason="meeting rescheduled")
    session.add_all(_reminders(meeting, now))
    cluster = await session.get(Cluster, meeting.cluster_id)
    rows = await _invitees(session, meeting_id=meeting.id)
    audit.record(
        session, actor_user_id=actor_user_id, action="meeting.reschedule", cluster_id=meeting.cluster_id,
        subject=f"meeting:{meeting.id}", detail={"fields": ["starts_at"], "revision": meeting.revision},
    )
    drafts = _drafts(
        meeting, rows, timezone=cluster.timezone, purpose=UPDATE, key=f"{meeting.id}:{meeting.revision}",
        previous_starts_at=previous, organizer=cluster.name,
    )
    await outbox.enqueue(session, drafts=drafts)
    await session.commit()
    # People told, not rows: each notice comes with its calendar file.
    return sum(1 for draft in drafts if draft.attachment is None)


async def cancel_meeting(
    session: AsyncSession, *, meeting: Meeting, actor_user_id: int | None, now: datetime | None = None
) -> int:
    """Cancel: no reminder goes out any more, and whoever was told about the meeting is told it
    is off (someone whose notice never left the outbox hears nothing of it)."""
    now = now or utcnow()
    _check_changeable(meeting, now)
    told = set(
        (
            await session.exec(
                select(OutboxMessage.stakeholder_id).where(
                    OutboxMessage.ref_id == meeting.id,
                    col(OutboxMessage.purpose).in_([INVITE, UPDATE]),
                    col(OutboxMessage.status).in_([OutboxStatus.SENT, OutboxStatus.SENDING]),
                )
            )
        ).all()
    )
    meeting.status, meeting.updated_at = CANCELLED, now
    session.add(meeting)
    await _close_reminders(session, meeting_id=meeting.id, now=now)
    await _skip_queued(session, meeting_id=meeting.id, purposes=(INVITE, UPDATE, REMINDER), reason="meeting cancelled")
    cluster = await session.get(Cluster, meeting.cluster_id)
    rows = [(invite, member) for invite, member in await _invitees(session, meeting_id=meeting.id) if member.id in told]
    audit.record(
        session, actor_user_id=actor_user_id, action="meeting.cancel", cluster_id=meeting.cluster_id,
        subject=f"meeting:{meeting.id}", detail={"fields": ["status"]},
    )
    drafts = _drafts(meeting, rows, timezone=cluster.timezone, purpose=CANCEL, key=str(meeting.id), organizer=cluster.name)
    await outbox.enqueue(session, drafts=drafts)
    await session.commit()
    return sum(1 for draft in drafts if draft.attachment is None)


# ---------------------------------------------------------------- reminders (bot/jobs.py, every minute)


async def _claim(session: AsyncSession, reminder_id: int, now: datetime) -> bool:
    # Marking it done is the claim: of two workers, only one changes the row.
    result = await session.exec(
        update(MeetingReminder)
        .where(col(MeetingReminder.id) == reminder_id, col(MeetingReminder.done_at).is_(None))
        .values(done_at=now)
    )
    return (result.rowcount or 0) == 1


async def queue_due_reminders(sessionmaker: SessionMaker, *, now: datetime | None = None) -> int:
    """Queue due reminders to invitees who answered Yes or Maybe; returns how many messages.

    Each reminder row is marked done in the same transaction that queues its messages, so it is
    acted on once: a reminder missed while the bot was down goes out after the restart if the
    meeting is still ahead; one whose meeting has started, was moved (an older revision) or was
    cancelled is closed without a message; when both are overdue only the later one is sent.
    """
    now = now or utcnow()
    async with sessionmaker() as session:
        due = list(
            (
                await session.exec(
                    select(MeetingReminder)
                    .where(col(MeetingReminder.done_at).is_(None), MeetingReminder.due_at <= now)
                    .order_by(col(MeetingReminder.meeting_id), col(MeetingReminder.due_at))
                )
            ).all()
        )
    queued = 0
    for meeting_id, group in groupby(due, key=lambda reminder: reminder.meeting_id):
        async with sessionmaker() as session:
            claimed = [reminder for reminder in group if await _claim(session, reminder.id, now)]
            meeting = await session.get(Meeting, meeting_id)
            current = [reminder for reminder in claimed if reminder.revision == meeting.revision]
            if not current or meeting.status != SCHEDULED or has_started(meeting, now):
                await session.commit()
                continue
            latest = current[-1]
            cluster = await session.get(Cluster, meeting.cluster_id)
            rows = await _invitees(session, meeting_id=meeting.id, responses=("yes", "maybe"))
            drafts = _drafts(
                meeting, rows, timezone=cluster.timezone, purpose=REMINDER, key=f"{meeting.id}:{meeting.revision}:{latest.kind}"
            )
            queued += await outbox.enqueue(session, drafts=drafts)
            await session.commit()
    return queued


# ---------------------------------------------------------------- the CDA's live tally message


async def remember_tally_message(
    session: AsyncSession, *, meeting_id: int, chat_id: int, message_id: int, language: str
) -> None:
    await set_value(session, key=TALLY_KEY.format(meeting_id=meeting_id), value=f"{chat_id}:{message_id}:{language}")


async def tally_message(session: AsyncSession, *, meeting_id: int) -> tuple[int, int, str] | None:
    """Where the live tally of this meeting is shown (the one the CDA opened last), and in
    which language, so that it can be edited in place."""
    value = await get_value(session, key=TALLY_KEY.format(meeting_id=meeting_id))
    if not value:
        return None
    chat_id, message_id, language = value.split(":")
    return int(chat_id), int(message_id), language
