"""Scheduled work. Due dates live in the database, so a restart neither loses nor repeats a
reminder: the job only acts on rows that are due and not yet done, and marks them done."""

from __future__ import annotations

import logging

from telegram.ext import Application, ContextTypes

from bot.db import SessionMaker
from bot.services import outbox
from bot.services.broadcasts import start_due_broadcasts
from bot.services.meetings import queue_due_reminders
from bot.services.reports import queue_weekly_reminders
from bot.services.surveys import service as surveys
from bot.services.surveys.notices import invitation_drafts
from models import Cluster, Survey
from models.base import utcnow

log = logging.getLogger(__name__)


async def survey_maintenance(sessionmaker: SessionMaker) -> int:
    """Close launches past their date and queue the one reminder for non-responders."""
    queued = 0
    async with sessionmaker() as session:
        await surveys.close_due_launches(session)
        for launch in await surveys.launches_to_remind(session):
            survey = await session.get(Survey, launch.survey_id)
            cluster = await session.get(Cluster, launch.cluster_id)
            members = await surveys.non_responders(session, launch=launch)
            drafts = invitation_drafts(launch, surveys.definition_of(survey), members, timezone=cluster.timezone, kind="reminder")
            queued += await outbox.enqueue(session, drafts=drafts)
            launch.reminded_at = utcnow()
            session.add(launch)
            await session.commit()
    return queued


# Everything due by the clock, each idempotent: the job may run late, twice, or on two workers.
MAINTENANCE = (survey_maintenance, start_due_broadcasts, queue_due_reminders, queue_weekly_reminders)


async def run_maintenance(sessionmaker: SessionMaker) -> int:
    queued = 0
    for task in MAINTENANCE:
        try:
            queued += await task(sessionmaker)
        except Exception:  # one failing task must not stop the others
            log.exception("Maintenance task %s failed", task.__name__)
    return queued


async def _run_maintenance(context: ContextTypes.DEFAULT_TYPE) -> None:
    deps = context.application.deps  # type: ignore[attr-defined]
    if await run_maintenance(deps.sessionmaker):
        sender = deps.extra.get("sender")
        if sender is not None:
            sender.notify()


def schedule_jobs(application: Application) -> None:
    # A stable name: rescheduling after a restart replaces, never doubles, the job.
    for job in application.job_queue.get_jobs_by_name("maintenance"):
        job.schedule_removal()
    application.job_queue.run_repeating(_run_maintenance, interval=60, first=5, name="maintenance")
