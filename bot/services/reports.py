"""Completion reports: filled in step by step (each step committed), submitted, verified; and the
weekly reminder to leads whose activities are due. No Telegram here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionMaker
from bot.i18n import N_, Translator
from bot.services import audit, outbox
from bot.services.activities import STATUS_LABELS, title_of
from bot.services.outbox import Draft
from bot.services.surveys import engine
from models import (
    Activity,
    ActivityPerson,
    CdaAssignment,
    Cluster,
    CompletionReport,
    Stakeholder,
    UserPreference,
)
from models.action_plan import ActivityRole, ActivityStatus
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

STEPS = ("status", "progress", "done_text", "participants", "photos", "confirm")
DRAFT, SUBMITTED = "draft", "submitted"
# What a reporter may say about their activity; cancelling stays with the CDA.
REPORT_STATUS_LABELS: dict[str, str] = {
    ActivityStatus.PLANNED: N_("Not started yet"),
    ActivityStatus.IN_PROGRESS: N_("In progress"),
    ActivityStatus.DONE: N_("Done"),
}
PROGRESS_BUTTONS = (0, 25, 50, 75, 100)
MAX_PHOTOS = 10
MAX_DONE_TEXT = 2000
MAX_PARTICIPANTS = 1_000_000
REPORTER_ROLES = (ActivityRole.LEAD, ActivityRole.PARTICIPANT, ActivityRole.COORDINATOR)
# Weekly reminders wait for the working day to start in the cluster's time zone.
REMINDER_HOUR = 9
VERIFY_PREFIX, PHOTOS_PREFIX, START_PREFIX = "rpv", "rpp", "rps"


class ReportProblem(ValueError):
    """Why an answer was refused: a msgid and its placeholders, translated by the caller."""

    def __init__(self, msgid: str, **values: Any) -> None:
        super().__init__(msgid.format(**values) if values else msgid)
        self.msgid, self.values = msgid, values

    def text(self, t: Translator) -> str:
        return t(self.msgid).format(**self.values) if self.values else t(self.msgid)


# ---------------------------------------------------------------- who may report on what


async def reportable(session: AsyncSession, *, stakeholder_id: int) -> list[tuple[Activity, CompletionReport | None]]:
    """Activities this stakeholder is on (not cancelled), each with their unfinished draft if any."""
    # A subquery, not DISTINCT: PostgreSQL cannot compare the JSON columns of two rows.
    on_it = select(ActivityPerson.activity_id).where(
        ActivityPerson.stakeholder_id == stakeholder_id, col(ActivityPerson.role).in_(list(REPORTER_ROLES))
    )
    rows = await session.exec(
        select(Activity).where(col(Activity.id).in_(on_it), Activity.status != ActivityStatus.CANCELLED)
    )
    activities = sorted(rows.all(), key=lambda a: (a.status == ActivityStatus.DONE, a.due_date or date.max, a.id))
    drafts = await session.exec(
        select(CompletionReport).where(CompletionReport.stakeholder_id == stakeholder_id, CompletionReport.state == DRAFT)
    )
    by_activity = {report.activity_id: report for report in drafts.all()}
    return [(activity, by_activity.get(activity.id)) for activity in activities]


async def may_report(session: AsyncSession, *, activity: Activity, stakeholder_id: int) -> bool:
    if activity.status == ActivityStatus.CANCELLED:
        return False
    found = await session.exec(
        select(ActivityPerson.id).where(
            ActivityPerson.activity_id == activity.id,
            ActivityPerson.stakeholder_id == stakeholder_id,
            col(ActivityPerson.role).in_(list(REPORTER_ROLES)),
        )
    )
    return found.first() is not None


async def start_or_resume(
    session: AsyncSession, *, activity: Activity, stakeholder: Stakeholder
) -> tuple[CompletionReport, bool]:
    """The stakeholder's draft on this activity, or a new one; True when it was created."""
    found = await session.exec(
        select(CompletionReport).where(
            CompletionReport.activity_id == activity.id,
            CompletionReport.stakeholder_id == stakeholder.id,
            CompletionReport.state == DRAFT,
        )
    )
    report = found.first()
    if report is not None:
        return report, False
    report = CompletionReport(activity_id=activity.id, stakeholder_id=stakeholder.id, step=STEPS[0])
    session.add(report)
    await session.commit()
    return report, True


async def owned_draft(session: AsyncSession, *, report_id: int, stakeholder_id: int) -> CompletionReport | None:
    report = await session.get(CompletionReport, report_id)
    if report is None or report.stakeholder_id != stakeholder_id or report.state != DRAFT:
        return None
    return report


# ---------------------------------------------------------------- answering, one step at a time


def parse_progress(raw: str | int) -> int:
    try:
        value = raw if isinstance(raw, int) else engine.parse_integer(str(raw))
    except engine.InvalidAnswer as problem:
        raise ReportProblem(problem.msgid) from None
    if not 0 <= value <= 100:
        raise ReportProblem(N_("Please write a number from 0 to 100."))
    return value


def parse_participants(raw: str) -> int:
    try:
        value = engine.parse_integer(raw)
    except engine.InvalidAnswer as problem:
        raise ReportProblem(problem.msgid) from None
    if not 0 <= value <= MAX_PARTICIPANTS:
        raise ReportProblem(N_("Please write a number of people, 0 or more."))
    return value


def clean_done_text(raw: str) -> str:
    lines = [" ".join(line.split()) for line in (raw or "").strip().splitlines()]
    value = "\n".join(lines).strip()
    if not value:
        raise ReportProblem(N_("Please write an answer; it cannot be empty."))
    if len(value) > MAX_DONE_TEXT:
        raise ReportProblem(N_("Please keep it under {limit} characters."), limit=MAX_DONE_TEXT)
    return value


async def _save(session: AsyncSession, report: CompletionReport, step: str, **values: Any) -> CompletionReport:
    for key, value in values.items():
        setattr(report, key, value)
    report.step = step
    report.updated_at = utcnow()
    session.add(report)
    await session.commit()
    return report


async def answer(session: AsyncSession, *, report: CompletionReport, step: str, value: Any) -> CompletionReport:
    """Validate and store the answer to ``step`` (the report's current step), then move on."""
    if report.state != DRAFT or step != report.step:
        raise ReportProblem(N_("This question is no longer open."))
    if step == "status":
        if value not in REPORT_STATUS_LABELS:
            raise ReportProblem(N_("Please choose one of the buttons."))
        return await _save(session, report, "progress", status=value)
    if step == "progress":
        return await _save(session, report, "done_text", progress=parse_progress(value))
    if step == "done_text":
        return await _save(session, report, "participants", done_text=clean_done_text(value))
    if step == "participants":
        return await _save(session, report, "photos", participants=parse_participants(value))
    raise ReportProblem(N_("Please use the buttons below."))


async def add_photo(session: AsyncSession, *, report: CompletionReport, file_id: str) -> int:
    if report.state != DRAFT or report.step != "photos":
        raise ReportProblem(N_("This question is no longer open."))
    photos = list(report.photo_file_ids or [])
    if file_id in photos:
        return len(photos)
    if len(photos) >= MAX_PHOTOS:
        raise ReportProblem(N_("That is enough photos ({count}). Please press Done."), count=MAX_PHOTOS)
    await _save(session, report, "photos", photo_file_ids=[*photos, file_id])
    return len(photos) + 1


async def finish_photos(session: AsyncSession, *, report: CompletionReport) -> CompletionReport:
    if report.state != DRAFT or report.step != "photos":
        raise ReportProblem(N_("This question is no longer open."))
    return await _save(session, report, "confirm")


async def restart(session: AsyncSession, *, report: CompletionReport) -> CompletionReport:
    return await _save(
        session, report, STEPS[0], status=None, progress=None, done_text=None, participants=None, photo_file_ids=[]
    )


async def set_message(session: AsyncSession, *, report: CompletionReport, message_id: int) -> None:
    """The message asking the current step, so its buttons can be removed when it is answered."""
    report.extra = {**(report.extra or {}), "message_id": message_id}
    session.add(report)
    await session.commit()


async def submit(
    session: AsyncSession,
    *,
    report: CompletionReport,
    actor_user_id: int | None,
    today: date,
    global_cdas: Iterable[int],
    default_language: str,
) -> Activity:
    """Submit a complete draft and queue the notices to the CDAs and the coordinator in the same
    transaction, so a crash leaves either both or neither. A report that says done closes the
    activity."""
    if report.state != DRAFT or report.step != "confirm":
        raise ReportProblem(N_("This question is no longer open."))
    activity = await session.get(Activity, report.activity_id)
    report.state, report.submitted_at, report.updated_at = SUBMITTED, utcnow(), utcnow()
    session.add(report)
    if report.status == ActivityStatus.DONE:
        activity.status = ActivityStatus.DONE
        activity.completed_on = today
    elif report.status == ActivityStatus.IN_PROGRESS and activity.status == ActivityStatus.PLANNED:
        activity.status = ActivityStatus.IN_PROGRESS
    activity.updated_at = utcnow()
    session.add(activity)
    audit.record(
        session, actor_user_id=actor_user_id, action="report.submit", cluster_id=activity.cluster_id,
        subject=str(report.id), detail={"activity": activity.id, "status": report.status},
    )
    await session.flush()
    drafts = await submission_drafts(session, report=report, global_cdas=global_cdas, default_language=default_language)
    await outbox.enqueue(session, drafts=drafts)  # commits the report, the activity and the notices
    return activity


# ---------------------------------------------------------------- telling the CDA and coordinator


def report_text(t: Translator, report: CompletionReport, activity: Activity, fallback: str, *, reporter: str | None) -> str:
    title = escape(title_of(activity, t.language, fallback))
    lines = [t("📝 <b>Report on “{title}”</b>").format(title=title)]
    if reporter:
        lines.append(t("From: {name}").format(name=escape(reporter)))
    label = REPORT_STATUS_LABELS.get(report.status) or STATUS_LABELS.get(report.status)
    if label:
        lines.append(t("Status: {status}").format(status=t(label)))
    if report.progress is not None:
        lines.append(t("Progress: {percent}").format(percent=t.percent(report.progress / 100)))
    if report.participants is not None:
        lines.append(t("People who took part: {count}").format(count=t.number(report.participants)))
    photos = len(report.photo_file_ids or [])
    lines.append(t.ngettext("{count} photo", "{count} photos", photos).format(count=t.number(photos)))
    if report.done_text:
        lines += ["", t("What was done:"), escape(report.done_text)]
    if report.verified_at is not None:
        lines += ["", t("✔ Verified")]
    return "\n".join(lines)


def review_markup(t: Translator, report: CompletionReport) -> dict | None:
    """A verify button until someone verifies, and a button to see the photos if there are any."""
    row = []
    if report.verified_at is None:
        row.append({"text": t("✔ Mark verified"), "callback_data": f"{VERIFY_PREFIX}:{report.id}"})
    photos = len(report.photo_file_ids or [])
    if photos:
        row.append({"text": t("🖼 Photos ({count})").format(count=t.number(photos)), "callback_data": f"{PHOTOS_PREFIX}:{report.id}"})
    return {"inline_keyboard": [row]} if row else None


@dataclass(frozen=True)
class Recipient:
    user_id: int
    language: str
    stakeholder_id: int | None


async def _language_of(session: AsyncSession, user_id: int, default: str) -> tuple[str, int | None]:
    found = await session.exec(select(Stakeholder).where(Stakeholder.telegram_user_id == user_id))
    stakeholder = found.first()
    if stakeholder is not None:
        return stakeholder.language, stakeholder.id
    preference = await session.get(UserPreference, user_id)
    return (preference.language if preference else default), None


async def cda_recipients(
    session: AsyncSession, *, cluster_id: int, global_cdas: Iterable[int], default_language: str
) -> list[Recipient]:
    """The CDAs of a cluster: the global ones from the settings and those assigned to it."""
    assigned = await session.exec(select(CdaAssignment.telegram_user_id).where(CdaAssignment.cluster_id == cluster_id))
    ids = sorted(set(global_cdas) | set(assigned.all()))
    found = []
    for user_id in ids:
        language, stakeholder_id = await _language_of(session, user_id, default_language)
        found.append(Recipient(user_id, language, stakeholder_id))
    return found


async def submission_drafts(
    session: AsyncSession, *, report: CompletionReport, global_cdas: Iterable[int], default_language: str
) -> list[Draft]:
    """One notice per CDA of the cluster and the activity's coordinator, with a verify button."""
    activity = await session.get(Activity, report.activity_id)
    cluster = await session.get(Cluster, activity.cluster_id)
    reporter = await session.get(Stakeholder, report.stakeholder_id) if report.stakeholder_id else None
    recipients = await cda_recipients(session, cluster_id=cluster.id, global_cdas=global_cdas, default_language=default_language)
    coordinators = await session.exec(
        select(Stakeholder)
        .join(ActivityPerson, col(ActivityPerson.stakeholder_id) == Stakeholder.id)
        .where(ActivityPerson.activity_id == activity.id, ActivityPerson.role == ActivityRole.COORDINATOR)
    )
    for coordinator in coordinators.all():
        if coordinator.status == StakeholderStatus.ACTIVE:
            recipients.append(Recipient(coordinator.telegram_user_id, coordinator.language, coordinator.id))
    drafts, seen = [], set()
    for recipient in recipients:
        if recipient.user_id in seen or (reporter is not None and recipient.user_id == reporter.telegram_user_id):
            continue
        seen.add(recipient.user_id)
        t = Translator(recipient.language, cluster.timezone)
        drafts.append(
            Draft(
                chat_id=recipient.user_id,
                stakeholder_id=recipient.stakeholder_id,
                text=report_text(t, report, activity, cluster.language, reporter=reporter.name if reporter else None),
                purpose="report_submitted",
                ref_id=report.id,
                reply_markup=review_markup(t, report),
                dedupe_key=f"report_submitted:{report.id}:{recipient.user_id}",
            )
        )
    return drafts


async def reviewable(
    session: AsyncSession, *, report_id: int, cda_cluster_ids: Iterable[int], coordinated_activity_ids: Iterable[int]
) -> tuple[CompletionReport, Activity] | None:
    """The submitted report and its activity, if this user is a CDA of its cluster or the
    activity's coordinator; None otherwise."""
    report = await session.get(CompletionReport, report_id)
    if report is None or report.state != SUBMITTED:
        return None
    activity = await session.get(Activity, report.activity_id)
    if activity is None:
        return None
    if activity.cluster_id in set(cda_cluster_ids) or activity.id in set(coordinated_activity_ids):
        return report, activity
    return None


async def verify(session: AsyncSession, *, report: CompletionReport, actor_user_id: int) -> bool:
    """Mark verified and queue a thank-you to the reporter, in one transaction; False if someone
    already verified it."""
    if report.verified_at is not None:
        return False
    activity = await session.get(Activity, report.activity_id)
    report.verified_at, report.verified_by, report.updated_at = utcnow(), actor_user_id, utcnow()
    session.add(report)
    audit.record(
        session, actor_user_id=actor_user_id, action="report.verify", cluster_id=activity.cluster_id,
        subject=str(report.id), detail={"activity": activity.id},
    )
    await outbox.enqueue(session, drafts=await verified_drafts(session, report=report))
    return True


async def verified_drafts(session: AsyncSession, *, report: CompletionReport) -> list[Draft]:
    """Tell the reporter their report was checked."""
    reporter = await session.get(Stakeholder, report.stakeholder_id) if report.stakeholder_id else None
    if reporter is None or reporter.status != StakeholderStatus.ACTIVE:
        return []
    activity = await session.get(Activity, report.activity_id)
    cluster = await session.get(Cluster, activity.cluster_id)
    t = Translator(reporter.language, cluster.timezone)
    text = t("✔ Your report on “{title}” was verified. Thank you!").format(
        title=escape(title_of(activity, t.language, cluster.language))
    )
    return [Draft(chat_id=reporter.chat_id, stakeholder_id=reporter.id, text=text, purpose="report_verified",
                  ref_id=report.id, dedupe_key=f"report_verified:{report.id}")]


async def submitted_reports(
    session: AsyncSession, *, activity: Activity, actor_user_id: int | None
) -> list[tuple[CompletionReport, str | None]]:
    """Submitted reports on an activity with the reporter's name, newest first; looking is logged."""
    rows = await session.exec(
        select(CompletionReport, Stakeholder.name)
        .outerjoin(Stakeholder, col(Stakeholder.id) == CompletionReport.stakeholder_id)
        .where(CompletionReport.activity_id == activity.id, CompletionReport.state == SUBMITTED)
        .order_by(col(CompletionReport.submitted_at).desc(), col(CompletionReport.id).desc())
    )
    found = [(report, name) for report, name in rows.all()]
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.reports.view", cluster_id=activity.cluster_id,
        subject=str(activity.id),
    )
    await session.commit()
    return found


async def submitted_count(session: AsyncSession, *, activity_id: int) -> int:
    rows = await session.exec(
        select(func.count()).select_from(CompletionReport).where(
            CompletionReport.activity_id == activity_id, CompletionReport.state == SUBMITTED
        )
    )
    return int(rows.one())


# ---------------------------------------------------------------- weekly reminders


def reminder_text(t: Translator, activity: Activity, fallback: str, today: date) -> str:
    title = escape(title_of(activity, t.language, fallback))
    due = t.date(activity.due_date, "long")
    if activity.due_date < today:
        return t("⏰ “{title}” was due on {date}. Please send a report on it with /report.").format(title=title, date=due)
    return t("⏰ Reminder: “{title}” is due on {date}. Please tell the CDA how it is going with /report.").format(
        title=title, date=due
    )


async def queue_weekly_reminders(sessionmaker: SessionMaker, *, now: datetime | None = None) -> int:
    """Once per ISO week (from 9:00 in the cluster's time zone), remind each lead of an open
    activity that is due within 7 days or overdue and has no report submitted since it came due
    within a week. The week is in every message's dedupe key, so calling this every minute queues
    each reminder once. Returns how many messages were queued."""
    now = as_utc(now) or utcnow()
    queued = 0
    async with sessionmaker() as session:
        clusters = (await session.exec(select(Cluster))).all()
        for cluster in clusters:
            zone = ZoneInfo(cluster.timezone)
            local = now.astimezone(zone)
            if local.hour < REMINDER_HOUR:
                continue
            today = local.date()
            iso_year, week, _ = today.isocalendar()
            due = await session.exec(
                select(Activity).where(
                    Activity.cluster_id == cluster.id,
                    col(Activity.status).in_([ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS]),
                    col(Activity.due_date).is_not(None),
                    col(Activity.due_date) <= today + timedelta(days=7),
                )
            )
            drafts: list[Draft] = []
            for activity in due.all():
                # In UTC: SQLite compares the stored UTC text, not instants.
                window_opened = datetime.combine(activity.due_date - timedelta(days=7), time.min, zone).astimezone(UTC)
                reported = await session.exec(
                    select(CompletionReport.id).where(
                        CompletionReport.activity_id == activity.id,
                        CompletionReport.state == SUBMITTED,
                        col(CompletionReport.submitted_at) >= window_opened,
                    )
                )
                if reported.first() is not None:
                    continue
                leads = await session.exec(
                    select(Stakeholder)
                    .join(ActivityPerson, col(ActivityPerson.stakeholder_id) == Stakeholder.id)
                    .where(
                        ActivityPerson.activity_id == activity.id,
                        ActivityPerson.role == ActivityRole.LEAD,
                        Stakeholder.status == StakeholderStatus.ACTIVE,
                    )
                )
                for lead in leads.all():
                    t = Translator(lead.language, cluster.timezone)
                    drafts.append(
                        Draft(
                            chat_id=lead.chat_id,
                            stakeholder_id=lead.id,
                            text=reminder_text(t, activity, cluster.language, today),
                            purpose="report_reminder",
                            ref_id=activity.id,
                            reply_markup={"inline_keyboard": [[{"text": t("📝 Report now"), "callback_data": f"{START_PREFIX}:{activity.id}"}]]},
                            dedupe_key=f"report_reminder:{activity.id}:{lead.id}:{iso_year}-W{week:02d}",
                        )
                    )
            if drafts:
                queued += await outbox.enqueue(session, drafts=drafts)
    return queued
