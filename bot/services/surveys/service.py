"""Survey records: import, launch, answer, close, remind, summarise. Session first, no Telegram."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import statistics
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import execute_and_commit
from bot.services import audit
from bot.services.settings_store import get_value, insert_if_absent
from bot.services.surveys import engine
from bot.services.surveys.loaders import LoadResult, load_file, template_paths
from bot.services.surveys.model import SurveyDefinition
from models import (
    Cluster,
    LinkageEdge,
    Membership,
    Stakeholder,
    Survey,
    SurveyInvitation,
    SurveyLaunch,
    SurveyResponse,
)
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

IN_PROGRESS, COMPLETED = "in_progress", "completed"
SALT_KEY = "respondent_salt"


class SurveyError(Exception):
    """A request that cannot be carried out; the message says what to do (for the CLI)."""


# ---------------------------------------------------------------- definitions


async def import_survey(session: AsyncSession, *, cluster: Cluster, result: LoadResult, source: str) -> Survey:
    definition = result.definition
    existing = await session.exec(
        select(Survey).where(
            Survey.cluster_id == cluster.id, Survey.form_id == definition.form_id, Survey.version == definition.version
        )
    )
    if existing.first() is not None:
        raise SurveyError(
            f"{definition.form_id!r} version {definition.version!r} is already in {cluster.name!r}; "
            "change the version to import a new one."
        )
    survey = Survey(
        cluster_id=cluster.id,
        form_id=definition.form_id,
        version=definition.version,
        title=definition.title,
        default_language=definition.default_language,
        anonymous=definition.anonymous,
        definition=definition.to_dict(),
        source=source,
    )
    session.add(survey)
    await session.flush()
    audit.record(session, actor_user_id=None, action="survey.import", cluster_id=cluster.id, subject=str(survey.id))
    await session.commit()
    return survey


async def install_templates(session: AsyncSession, *, cluster: Cluster) -> list[Survey]:
    installed = []
    for path in template_paths():
        result = load_file(path)
        try:
            installed.append(await import_survey(session, cluster=cluster, result=result, source="template"))
        except SurveyError:
            await session.rollback()
    return installed


# A stored definition never changes (a new edition is a new row), so parsing it once is enough.
_DEFINITIONS: dict[tuple, SurveyDefinition] = {}


def definition_of(survey: Survey) -> SurveyDefinition:
    key = (survey.id, survey.form_id, survey.version, survey.created_at)
    definition = _DEFINITIONS.get(key)
    if definition is None:
        if len(_DEFINITIONS) > 256:
            _DEFINITIONS.clear()
        definition = _DEFINITIONS[key] = SurveyDefinition.from_dict(survey.definition)
    return definition


@dataclass
class SurveySummary:
    survey: Survey
    launches: int
    responses: int
    completed: int


async def list_surveys(session: AsyncSession, *, cluster_id: int | None = None) -> list[SurveySummary]:
    query = select(Survey).order_by(col(Survey.cluster_id), col(Survey.id))
    if cluster_id is not None:
        query = query.where(Survey.cluster_id == cluster_id)
    surveys = list((await session.exec(query)).all())
    launch_counts = dict(
        (await session.exec(select(SurveyLaunch.survey_id, func.count()).group_by(SurveyLaunch.survey_id))).all()
    )
    response_counts: dict[tuple[int, str], int] = {
        (sid, status): int(n)
        for sid, status, n in (
            await session.exec(
                select(SurveyResponse.survey_id, SurveyResponse.status, func.count()).group_by(
                    SurveyResponse.survey_id, SurveyResponse.status
                )
            )
        ).all()
    }
    return [
        SurveySummary(
            survey,
            int(launch_counts.get(survey.id, 0)),
            response_counts.get((survey.id, IN_PROGRESS), 0) + response_counts.get((survey.id, COMPLETED), 0),
            response_counts.get((survey.id, COMPLETED), 0),
        )
        for survey in surveys
    ]


# ---------------------------------------------------------------- launches


@dataclass(frozen=True)
class Audience:
    kind: str = "all"  # all | role | language
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


async def audience_members(session: AsyncSession, *, cluster_id: int, audience: Audience) -> list[Stakeholder]:
    query = (
        select(Stakeholder)
        .join(Membership)
        .where(Membership.cluster_id == cluster_id, Stakeholder.status == StakeholderStatus.ACTIVE)
        .order_by(col(Stakeholder.id))
    )
    if audience.kind == "role":
        query = query.where(Stakeholder.role == audience.value)
    elif audience.kind == "language":
        query = query.where(Stakeholder.language == audience.value)
    return list((await session.exec(query)).all())


async def create_launch(
    session: AsyncSession,
    *,
    survey: Survey,
    audience: Audience,
    closes_at: datetime,
    created_by: int | None,
) -> tuple[SurveyLaunch, list[Stakeholder]]:
    now = utcnow()
    if as_utc(closes_at) <= now:
        raise SurveyError("The closing date must be in the future.")
    waves = await session.exec(
        select(func.count()).select_from(SurveyLaunch).join(Survey).where(
            Survey.cluster_id == survey.cluster_id, Survey.form_id == survey.form_id
        )
    )
    # One reminder, a day before closing (or half-way for launches shorter than two days).
    span = as_utc(closes_at) - now
    remind_at = as_utc(closes_at) - min(timedelta(days=1), span / 2)
    launch = SurveyLaunch(
        survey_id=survey.id,
        cluster_id=survey.cluster_id,
        wave=int(waves.one()) + 1,
        audience=audience.as_dict(),
        closes_at=as_utc(closes_at),
        remind_at=remind_at,
        created_by=created_by,
    )
    session.add(launch)
    await session.flush()
    members = await audience_members(session, cluster_id=survey.cluster_id, audience=audience)
    for member in members:
        session.add(SurveyInvitation(launch_id=launch.id, stakeholder_id=member.id))
    audit.record(
        session, actor_user_id=created_by, action="survey.launch", cluster_id=survey.cluster_id,
        subject=str(launch.id), detail={"audience": audience.as_dict(), "recipients": len(members)},
    )
    await session.commit()
    return launch, members


def is_open(launch: SurveyLaunch, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return launch.closed_at is None and as_utc(launch.closes_at) > now


async def close_due_launches(session: AsyncSession) -> list[SurveyLaunch]:
    now = utcnow()
    due = list((await session.exec(
        select(SurveyLaunch).where(col(SurveyLaunch.closed_at).is_(None), SurveyLaunch.closes_at <= now)
    )).all())
    for launch in due:
        launch.closed_at = now
    await session.commit()
    return due


async def launches_to_remind(session: AsyncSession) -> list[SurveyLaunch]:
    now = utcnow()
    return list((await session.exec(
        select(SurveyLaunch).where(
            col(SurveyLaunch.closed_at).is_(None),
            col(SurveyLaunch.reminded_at).is_(None),
            SurveyLaunch.remind_at <= now,
            SurveyLaunch.closes_at > now,
        )
    )).all())


async def non_responders(session: AsyncSession, *, launch: SurveyLaunch) -> list[Stakeholder]:
    invited = list((await session.exec(
        select(Stakeholder).join(SurveyInvitation).where(
            SurveyInvitation.launch_id == launch.id, Stakeholder.status == StakeholderStatus.ACTIVE
        ).order_by(col(Stakeholder.id))
    )).all())
    done = set((await session.exec(
        select(SurveyResponse.respondent_key).where(
            SurveyResponse.launch_id == launch.id, SurveyResponse.status == COMPLETED
        )
    )).all())
    salt = await respondent_salt(session)
    return [s for s in invited if respondent_key(salt, launch.id, s.telegram_user_id) not in done]


# ---------------------------------------------------------------- responses


# Survey rows never change and a launch only closes once its closing time has passed, which
# is_open checks by the clock: both can be kept per engine instead of read on every answer.
_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _engine_of(session: AsyncSession):
    return session.bind.sync_engine if hasattr(session.bind, "sync_engine") else session.bind


async def cached_row(session: AsyncSession, model: type[Survey] | type[SurveyLaunch], row_id: int):
    cache = _ROWS.setdefault(_engine_of(session), {})
    key = (model.__name__, row_id)
    row = cache.get(key)
    if row is None:
        row = await session.get(model, row_id)
        if row is not None:
            if len(cache) > 2048:
                cache.clear()
            cache[key] = row
    return row


# The salt is created once per database and never changes: keep it per engine, not per query.
_SALTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def respondent_salt(session: AsyncSession) -> bytes:
    engine = _engine_of(session)
    salt = _SALTS.get(engine)
    if salt is None:
        value = await get_value(session, key=SALT_KEY)
        if value is None:
            # Two first respondents at once must end up with one salt: insert if absent, read back.
            await insert_if_absent(session, key=SALT_KEY, value=secrets.token_hex(32))
            value = await get_value(session, key=SALT_KEY)
        salt = _SALTS[engine] = bytes.fromhex(value)
    return salt


def respondent_key(salt: bytes, launch_id: int, telegram_user_id: int) -> str:
    """A keyed hash: enough to stop a second response, useless for finding who answered."""
    return hmac.new(salt, f"{launch_id}:{telegram_user_id}".encode(), hashlib.sha256).hexdigest()


@dataclass
class OpenSurvey:
    launch: SurveyLaunch
    survey: Survey
    response: SurveyResponse | None


async def surveys_for(session: AsyncSession, *, stakeholder: Stakeholder) -> list[OpenSurvey]:
    """The launches this stakeholder was invited to that are still open, with their progress."""
    rows = (await session.exec(
        select(SurveyLaunch, Survey)
        .join(SurveyInvitation, col(SurveyInvitation.launch_id) == SurveyLaunch.id)
        .join(Survey, col(Survey.id) == SurveyLaunch.survey_id)
        .where(SurveyInvitation.stakeholder_id == stakeholder.id, col(SurveyLaunch.closed_at).is_(None))
        .order_by(col(SurveyLaunch.closes_at))
    )).all()
    salt = await respondent_salt(session)
    result = []
    for launch, survey in rows:
        if not is_open(launch):
            continue
        key = respondent_key(salt, launch.id, stakeholder.telegram_user_id)
        response = (await session.exec(
            select(SurveyResponse).where(SurveyResponse.launch_id == launch.id, SurveyResponse.respondent_key == key)
        )).first()
        result.append(OpenSurvey(launch, survey, response))
    return result


async def is_invited(session: AsyncSession, *, launch_id: int, stakeholder: Stakeholder) -> bool:
    found = await session.exec(
        select(SurveyInvitation.id).where(
            SurveyInvitation.launch_id == launch_id, SurveyInvitation.stakeholder_id == stakeholder.id
        )
    )
    return found.first() is not None


async def start_or_resume(
    session: AsyncSession, *, launch: SurveyLaunch, survey: Survey, stakeholder: Stakeholder
) -> tuple[SurveyResponse, bool]:
    """The respondent's response row, created at the first question if new; (response, created)."""
    key = respondent_key(await respondent_salt(session), launch.id, stakeholder.telegram_user_id)
    response = (await session.exec(
        select(SurveyResponse).where(SurveyResponse.launch_id == launch.id, SurveyResponse.respondent_key == key)
    )).first()
    if response is not None:
        return response, False
    definition = definition_of(survey)
    first = engine.next_question(definition, {})
    response = SurveyResponse(
        launch_id=launch.id,
        survey_id=survey.id,
        stakeholder_id=None if survey.anonymous else stakeholder.id,
        respondent_key=key,
        current=first.name if first else None,
    )
    session.add(response)
    await session.commit()
    return response, True


async def owns(session: AsyncSession, *, response: SurveyResponse, telegram_user_id: int) -> bool:
    salt = await respondent_salt(session)
    return hmac.compare_digest(response.respondent_key, respondent_key(salt, response.launch_id, telegram_user_id))


@dataclass
class AnswerOutcome:
    accepted: bool
    value: Any = None
    problem: engine.InvalidAnswer | None = None
    completed: bool = False


async def record_answer(
    session: AsyncSession,
    *,
    response: SurveyResponse,
    definition: SurveyDefinition,
    raw: Any,
    cluster_id: int,
    today: date | None = None,
) -> AnswerOutcome:
    """Validate and commit one answer to the current question, then move to the next one."""
    question = definition.question(response.current or "")
    try:
        value = engine.validate(question, raw, response.answers, today=today)
        if question.type == "select_stakeholders" and value:
            value = await _only_members(session, cluster_id=cluster_id, ids=value)
    except engine.InvalidAnswer as problem:
        return AnswerOutcome(False, problem=problem)
    answers = {**response.answers, question.name: value}
    following = engine.next_question(definition, answers, after=question.name)
    now = utcnow()
    changes: dict[str, Any] = {"answers": answers, "pending": [], "updated_at": now}
    if following is not None:
        await _write(session, response, {**changes, "current": following.name}, commit=True)
    else:
        final = engine.final_answers(definition, answers)
        await _write(session, response, {**changes, "answers": final, "current": None, "status": COMPLETED, "completed_at": now})
        await _store_edges(session, response=response, definition=definition, cluster_id=cluster_id)
        await session.commit()
    return AnswerOutcome(True, value=value, completed=following is None)


# UPDATE statements by the columns they set, built once: an answer's UPDATE is then run from
# its cached compiled form without SQLAlchemy walking a new statement for its cache key.
_UPDATES: dict[tuple[str, ...], Any] = {}


def _update_of(columns: tuple[str, ...]):
    statement = _UPDATES.get(columns)
    if statement is None:
        table = SurveyResponse.__table__
        statement = _UPDATES[columns] = (
            table.update().where(table.c.id == bindparam("row_id")).values({c: bindparam(f"new_{c}") for c in columns})
        )
    return statement


async def _write(session: AsyncSession, response: SurveyResponse, changes: dict[str, Any], *, commit: bool = False) -> None:
    """One UPDATE of the given columns (committed with it if asked), and the row object brought
    up to date as if loaded so.

    Every answer goes through here, so it skips the ORM's unit of work (which would diff and
    flush the whole object) for a plain UPDATE by primary key.
    """
    columns = tuple(sorted(changes))
    statement = _update_of(columns)
    params = {"row_id": response.id, **{f"new_{c}": changes[c] for c in columns}}
    if commit:
        await execute_and_commit(session, statement, params)
    else:
        await (await session.connection()).execute(statement, params)
    for name, value in changes.items():
        set_committed_value(response, name, value)


async def go_back(session: AsyncSession, *, response: SurveyResponse, definition: SurveyDefinition) -> bool:
    previous = engine.previous_question(definition, response.answers, response.current or "")
    if previous is None:
        return False
    response.current = previous.name
    response.pending = []
    response.updated_at = utcnow()
    session.add(response)
    await session.commit()
    return True


async def set_pending(session: AsyncSession, *, response: SurveyResponse, pending: list[Any]) -> None:
    response.pending = pending
    response.updated_at = utcnow()
    session.add(response)
    await session.commit()


async def set_message(session: AsyncSession, *, response: SurveyResponse, message_id: int) -> None:
    await _write(session, response, {"message_id": message_id}, commit=True)


async def _only_members(session: AsyncSession, *, cluster_id: int, ids: list[int]) -> list[int]:
    rows = await session.exec(
        select(Membership.stakeholder_id).where(Membership.cluster_id == cluster_id, col(Membership.stakeholder_id).in_(ids))
    )
    members = set(rows.all())
    if set(ids) - members:
        raise engine.InvalidAnswer(engine.N_("Please choose one of the buttons."))
    return sorted(members)


async def _store_edges(session: AsyncSession, *, response: SurveyResponse, definition: SurveyDefinition, cluster_id: int) -> None:
    if response.stakeholder_id is None:
        return  # anonymous: an edge would reveal who answered
    for question in definition.questions:
        if question.type != "select_stakeholders":
            continue
        for target in response.answers.get(question.name) or []:
            if target != response.stakeholder_id:
                session.add(LinkageEdge(
                    cluster_id=cluster_id, launch_id=response.launch_id, response_id=response.id,
                    question=question.name, source_stakeholder_id=response.stakeholder_id,
                    target_stakeholder_id=target,
                ))


async def cluster_members(
    session: AsyncSession, *, cluster_id: int, exclude: int | None, search: str | None, offset: int, limit: int
) -> tuple[list[Stakeholder], int]:
    query = select(Stakeholder).join(Membership).where(Membership.cluster_id == cluster_id)
    if exclude is not None:
        query = query.where(Stakeholder.id != exclude)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            func.lower(Stakeholder.name).like(pattern) | func.lower(func.coalesce(Stakeholder.enterprise, "")).like(pattern)
        )
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(query.order_by(col(Stakeholder.name), col(Stakeholder.id)).offset(offset).limit(limit))
    return list(rows.all()), int(total)


# ---------------------------------------------------------------- results


@dataclass
class QuestionSummary:
    name: str
    type: str
    answered: int
    counts: Counter = field(default_factory=Counter)
    mean: float | None = None
    median: float | None = None


@dataclass
class LaunchResults:
    launch: SurveyLaunch
    survey: Survey
    invited: int
    completed: int
    in_progress: int
    questions: list[QuestionSummary]

    @property
    def rate(self) -> float:
        return self.completed / self.invited if self.invited else 0.0


def summarise(definition: SurveyDefinition, answer_sets: list[dict[str, Any]]) -> list[QuestionSummary]:
    summaries = []
    for question in definition.questions:
        if question.type in ("note", "acknowledge"):
            continue
        values = [answers[question.name] for answers in answer_sets if answers.get(question.name) not in (None, "", [])]
        summary = QuestionSummary(question.name, question.type, len(values))
        if question.type == "select_one":
            summary.counts = Counter(values)
        elif question.type in ("select_multiple", "select_stakeholders"):
            summary.counts = Counter(item for value in values for item in value)
        elif question.type in ("integer", "decimal", "range") and values:
            numbers = [float(v) for v in values]
            summary.mean, summary.median = statistics.fmean(numbers), statistics.median(numbers)
        summaries.append(summary)
    return summaries


async def launch_results(session: AsyncSession, *, launch: SurveyLaunch) -> LaunchResults:
    survey = await session.get(Survey, launch.survey_id)
    invited = (await session.exec(
        select(func.count()).select_from(SurveyInvitation).where(SurveyInvitation.launch_id == launch.id)
    )).one()
    responses = list((await session.exec(select(SurveyResponse).where(SurveyResponse.launch_id == launch.id))).all())
    completed = [r.answers for r in responses if r.status == COMPLETED]
    return LaunchResults(
        launch, survey, int(invited), len(completed),
        sum(1 for r in responses if r.status == IN_PROGRESS),
        summarise(definition_of(survey), completed),
    )


async def launches_of(session: AsyncSession, *, cluster_ids: list[int]) -> list[tuple[SurveyLaunch, Survey]]:
    rows = await session.exec(
        select(SurveyLaunch, Survey).join(Survey, col(Survey.id) == SurveyLaunch.survey_id)
        .where(col(SurveyLaunch.cluster_id).in_(cluster_ids)).order_by(col(SurveyLaunch.created_at).desc())
    )
    return list(rows.all())
