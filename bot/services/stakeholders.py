from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, func
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit
from models import (
    Activity,
    ActivityPerson,
    AuditEntry,
    CdaAssignment,
    Cluster,
    CompletionReport,
    DialogState,
    Meeting,
    MeetingInvite,
    Membership,
    OutboxMessage,
    Stakeholder,
    Survey,
    SurveyResponse,
    UserPreference,
)
from models.action_plan import ActivityRole
from models.base import as_utc, utcnow
from models.stakeholder import SizeClass, StakeholderStatus

# Bump when the consent notice's text changes, so we know which notice each person agreed to.
NOTICE_VERSION = "2026-11"


async def get_stakeholder(session: AsyncSession, *, telegram_user_id: int) -> Stakeholder | None:
    result = await session.exec(
        select(Stakeholder).where(Stakeholder.telegram_user_id == telegram_user_id)
    )
    return result.first()


async def clusters_of(session: AsyncSession, *, stakeholder: Stakeholder) -> list[Cluster]:
    result = await session.exec(
        select(Cluster)
        .join(Membership)
        .where(Membership.stakeholder_id == stakeholder.id)
        .order_by(col(Membership.joined_at))
    )
    return list(result.all())


async def is_member(session: AsyncSession, *, stakeholder: Stakeholder, cluster_id: int) -> bool:
    result = await session.exec(
        select(Membership.id).where(
            Membership.stakeholder_id == stakeholder.id, Membership.cluster_id == cluster_id
        )
    )
    return result.first() is not None


async def register(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    chat_id: int,
    cluster_id: int,
    answers: dict[str, Any],
    language: str,
    consent_at: datetime,
) -> Stakeholder:
    """Save a confirmed registration and its first membership in one transaction."""
    stakeholder = Stakeholder(
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        name=answers["name"],
        role=answers["role"],
        enterprise=answers.get("enterprise"),
        product=answers.get("product"),
        size_class=answers.get("size_class") or SizeClass.NOT_ENTERPRISE,
        phone=answers.get("phone"),
        language=language,
        consent_at=consent_at,
        notice_version=NOTICE_VERSION,
    )
    session.add(stakeholder)
    await session.flush()
    session.add(Membership(stakeholder_id=stakeholder.id, cluster_id=cluster_id))
    await session.exec(
        delete(UserPreference).where(col(UserPreference.telegram_user_id) == telegram_user_id)
    )
    await session.exec(
        delete(DialogState).where(col(DialogState.telegram_user_id) == telegram_user_id)
    )
    audit.record(
        session,
        actor_user_id=telegram_user_id,
        action="stakeholder.register",
        cluster_id=cluster_id,
        subject=str(stakeholder.id),
    )
    await session.commit()
    return stakeholder


async def join_cluster(session: AsyncSession, *, stakeholder: Stakeholder, cluster_id: int) -> bool:
    """Add a membership; False when the stakeholder already belonged to the cluster."""
    if await is_member(session, stakeholder=stakeholder, cluster_id=cluster_id):
        return False
    session.add(Membership(stakeholder_id=stakeholder.id, cluster_id=cluster_id))
    audit.record(
        session,
        actor_user_id=stakeholder.telegram_user_id,
        action="stakeholder.join",
        cluster_id=cluster_id,
        subject=str(stakeholder.id),
    )
    await session.commit()
    return True


async def update_profile(
    session: AsyncSession, *, stakeholder: Stakeholder, changes: dict[str, Any]
) -> Stakeholder:
    for key, value in changes.items():
        setattr(stakeholder, key, value)
    stakeholder.updated_at = utcnow()
    session.add(stakeholder)
    audit.record(
        session,
        actor_user_id=stakeholder.telegram_user_id,
        action="stakeholder.update",
        subject=str(stakeholder.id),
        detail={"fields": sorted(changes)},
    )
    await session.commit()
    return stakeholder


async def set_language(session: AsyncSession, *, telegram_user_id: int, language: str) -> None:
    stakeholder = await get_stakeholder(session, telegram_user_id=telegram_user_id)
    if stakeholder is not None:
        stakeholder.language = language
        stakeholder.updated_at = utcnow()
        session.add(stakeholder)
    else:
        preference = await session.get(UserPreference, telegram_user_id)
        if preference is None:
            session.add(UserPreference(telegram_user_id=telegram_user_id, language=language))
        else:
            preference.language = language
            preference.updated_at = utcnow()
    await session.commit()


async def preferred_language(session: AsyncSession, *, telegram_user_id: int) -> str | None:
    preference = await session.get(UserPreference, telegram_user_id)
    return preference.language if preference else None


def _iso(moment: datetime | None) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat() if moment else None


async def export_personal_data(session: AsyncSession, *, telegram_user_id: int) -> dict[str, Any]:
    """Everything stored about one person, for /mydata."""
    stakeholder = await get_stakeholder(session, telegram_user_id=telegram_user_id)
    document: dict[str, Any] = {"telegram_user_id": telegram_user_id, "exported_at": _iso(utcnow())}
    if stakeholder is not None:
        document["profile"] = {
            "name": stakeholder.name,
            "role": stakeholder.role,
            "enterprise": stakeholder.enterprise,
            "product_or_sector": stakeholder.product,
            "size_class": stakeholder.size_class,
            "phone": stakeholder.phone,
            "language": stakeholder.language,
            "status": stakeholder.status,
            "consent_given_at": _iso(stakeholder.consent_at),
            "consent_notice_version": stakeholder.notice_version,
            "registered_at": _iso(stakeholder.created_at),
            "updated_at": _iso(stakeholder.updated_at),
        }
        memberships = await session.exec(
            select(Membership, Cluster)
            .join(Cluster)
            .where(Membership.stakeholder_id == stakeholder.id)
            .order_by(col(Membership.joined_at))
        )
        document["clusters"] = [
            {"cluster": cluster.name, "joined_at": _iso(membership.joined_at)}
            for membership, cluster in memberships.all()
        ]
        responses = await session.exec(
            select(SurveyResponse, Survey)
            .join(Survey, col(Survey.id) == SurveyResponse.survey_id)
            .where(SurveyResponse.stakeholder_id == stakeholder.id)
            .order_by(col(SurveyResponse.started_at))
        )
        document["survey_responses"] = [
            {
                "survey": survey.title.get(survey.default_language) or survey.form_id,
                "version": survey.version,
                "status": response.status,
                "answers": response.answers,
                "started_at": _iso(response.started_at),
                "completed_at": _iso(response.completed_at),
            }
            for response, survey in responses.all()
        ]
        document.update(await _activity_data(session, stakeholder_id=stakeholder.id))
    messages = await session.exec(
        select(OutboxMessage.purpose, OutboxMessage.status, OutboxMessage.sent_at)
        .where(OutboxMessage.chat_id == telegram_user_id)
        .order_by(col(OutboxMessage.id))
    )
    document["messages_sent_to_you"] = [
        {"purpose": purpose, "status": status, "sent_at": _iso(sent_at)} for purpose, status, sent_at in messages.all()
    ]
    preference = await session.get(UserPreference, telegram_user_id)
    if preference is not None:
        document["language_preference"] = preference.language
    state = await session.get(DialogState, telegram_user_id)
    if state is not None:
        document["unfinished_step"] = {"flow": state.flow, "step": state.step, "answers": state.data}
    actions = await session.exec(
        select(AuditEntry)
        .where(AuditEntry.actor_user_id == telegram_user_id)
        .order_by(col(AuditEntry.at))
    )
    document["activity_log"] = [
        {"at": _iso(entry.at), "action": entry.action, "detail": entry.detail}
        for entry in actions.all()
    ]
    return document


async def _activity_data(session: AsyncSession, *, stakeholder_id: int) -> dict[str, Any]:
    roles = await session.exec(
        select(ActivityPerson.role, Activity.title, Activity.year)
        .join(Activity, col(Activity.id) == ActivityPerson.activity_id)
        .where(ActivityPerson.stakeholder_id == stakeholder_id)
    )
    reports = await session.exec(
        select(CompletionReport, Activity.title)
        .join(Activity, col(Activity.id) == CompletionReport.activity_id)
        .where(CompletionReport.stakeholder_id == stakeholder_id)
        .order_by(col(CompletionReport.created_at))
    )
    invites = await session.exec(
        select(MeetingInvite, Meeting.title, Meeting.starts_at)
        .join(Meeting, col(Meeting.id) == MeetingInvite.meeting_id)
        .where(MeetingInvite.stakeholder_id == stakeholder_id)
        .order_by(col(Meeting.starts_at))
    )
    return {
        "activities": [{"role": role, "activity": title, "year": year} for role, title, year in roles.all()],
        "reports": [
            {
                "activity": title,
                "state": report.state,
                "status": report.status,
                "progress": report.progress,
                "what_was_done": report.done_text,
                "participants": report.participants,
                "photos": len(report.photo_file_ids or []),
                "submitted_at": _iso(report.submitted_at),
            }
            for report, title in reports.all()
        ],
        "meetings": [
            {"meeting": title, "starts_at": _iso(starts_at), "rsvp": invite.response}
            for invite, title, starts_at in invites.all()
        ],
    }


async def discard_draft(session: AsyncSession, *, telegram_user_id: int) -> None:
    """Drop an unconfirmed registration and the language picked for it."""
    await session.exec(
        delete(UserPreference).where(col(UserPreference.telegram_user_id) == telegram_user_id)
    )
    await session.exec(
        delete(DialogState).where(col(DialogState.telegram_user_id) == telegram_user_id)
    )
    await session.commit()


async def forget(session: AsyncSession, *, telegram_user_id: int) -> None:
    """Erase a person's personal data. The audit trail keeps what happened, not who did it."""
    stakeholder = await get_stakeholder(session, telegram_user_id=telegram_user_id)
    if stakeholder is not None:
        await session.exec(
            delete(Membership).where(col(Membership.stakeholder_id) == stakeholder.id)
        )
        await session.delete(stakeholder)
    await session.exec(
        delete(UserPreference).where(col(UserPreference.telegram_user_id) == telegram_user_id)
    )
    await session.exec(
        delete(DialogState).where(col(DialogState.telegram_user_id) == telegram_user_id)
    )
    # Queued and sent notices to this chat carry their name and what they were told.
    await session.exec(delete(OutboxMessage).where(col(OutboxMessage.chat_id) == telegram_user_id))
    await session.exec(
        update(AuditEntry)
        .where(col(AuditEntry.actor_user_id) == telegram_user_id)
        .values(actor_user_id=None)
    )
    audit.record(session, actor_user_id=None, action="stakeholder.forget")
    await session.commit()


@dataclass(frozen=True)
class MemberPage:
    counts_by_role: dict[str, int]
    members: list[Stakeholder]
    total: int
    page: int
    pages: int


async def members_page(
    session: AsyncSession, *, cluster_id: int, page: int, per_page: int = 10
) -> MemberPage:
    counts = await session.exec(
        select(Stakeholder.role, func.count())
        .join(Membership)
        .where(Membership.cluster_id == cluster_id)
        .group_by(Stakeholder.role)
    )
    counts_by_role = {role: int(n) for role, n in counts.all()}
    total = sum(counts_by_role.values())
    pages = max(1, -(-total // per_page))
    page = min(max(page, 0), pages - 1)
    members = await session.exec(
        select(Stakeholder)
        .join(Membership)
        .where(Membership.cluster_id == cluster_id)
        .order_by(col(Stakeholder.role), col(Stakeholder.name), col(Stakeholder.id))
        .offset(page * per_page)
        .limit(per_page)
    )
    return MemberPage(counts_by_role, list(members.all()), total, page, pages)


async def coordinated_activities(session: AsyncSession, *, stakeholder_id: int) -> list[int]:
    """Activities the CDA has handed over to this stakeholder."""
    rows = await session.exec(
        select(ActivityPerson.activity_id).where(
            ActivityPerson.stakeholder_id == stakeholder_id, ActivityPerson.role == ActivityRole.COORDINATOR
        )
    )
    return list(rows.all())


@dataclass(frozen=True)
class Identity:
    """Everything the per-update loader needs about one Telegram user, read in one round trip."""

    stakeholder: Stakeholder | None
    preferred_language: str | None
    coordinated_activity_ids: list[int]
    assigned_cluster_ids: list[int]
    # The persisted chat flow as the update arrived: typed messages are routed by it.
    dialog_state: DialogState | None = None


def _identity_query():
    user = select(bindparam("uid", type_=BigInteger).label("uid")).subquery()
    return (
        select(Stakeholder, UserPreference.language, ActivityPerson.activity_id, CdaAssignment.cluster_id, DialogState)
        .select_from(user)
        .outerjoin(Stakeholder, col(Stakeholder.telegram_user_id) == user.c.uid)
        .outerjoin(UserPreference, col(UserPreference.telegram_user_id) == user.c.uid)
        .outerjoin(
            ActivityPerson,
            and_(
                col(ActivityPerson.stakeholder_id) == Stakeholder.id,
                col(ActivityPerson.role) == ActivityRole.COORDINATOR,
            ),
        )
        .outerjoin(CdaAssignment, col(CdaAssignment.telegram_user_id) == user.c.uid)
        .outerjoin(DialogState, col(DialogState.telegram_user_id) == user.c.uid)
    )


# Built once: every update runs it, and a statement object that is reused keeps its cache key
# instead of SQLAlchemy walking a fresh one each time.
IDENTITY_QUERY = _identity_query()


async def load_identity(session: AsyncSession, *, telegram_user_id: int) -> Identity:
    rows = (await session.exec(IDENTITY_QUERY, params={"uid": telegram_user_id})).all()
    return Identity(
        stakeholder=rows[0][0] if rows else None,
        preferred_language=rows[0][1] if rows else None,
        coordinated_activity_ids=sorted({row[2] for row in rows if row[2] is not None}),
        assigned_cluster_ids=sorted({row[3] for row in rows if row[3] is not None}),
        dialog_state=rows[0][4] if rows else None,
    )


def is_reachable(stakeholder: Stakeholder) -> bool:
    return stakeholder.status == StakeholderStatus.ACTIVE
