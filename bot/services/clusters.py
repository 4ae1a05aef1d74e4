from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit
from bot.services.settings_store import BOT_USERNAME, get_value
from models import CdaAssignment, Cluster, Membership

INVITE_CODE = re.compile(r"[A-Za-z0-9_-]{8,32}")


class ClusterError(Exception):
    """A request about clusters that cannot be carried out; the message says what to do."""


def new_invite_code() -> str:
    # 12 characters from 72 random bits: unguessable, and short enough for a QR code. A code
    # starting with "-" would read as an option to the CLI (`cluster score -abc...`).
    while True:
        code = secrets.token_urlsafe(9)
        if not code.startswith("-"):
            return code


def is_invite_code(text: str) -> bool:
    return INVITE_CODE.fullmatch(text) is not None


async def create_cluster(
    session: AsyncSession,
    *,
    name: str,
    sector: str | None = None,
    district: str | None = None,
    state: str | None = None,
    language: str = "en",
    timezone: str = "Asia/Kolkata",
) -> Cluster:
    name = name.strip()
    if not name:
        raise ClusterError("A cluster needs a name.")
    existing = await session.exec(select(Cluster).where(func.lower(Cluster.name) == name.lower()))
    if existing.first() is not None:
        raise ClusterError(f"A cluster named {name!r} already exists; choose another name.")
    cluster = Cluster(
        name=name,
        sector=sector,
        district=district,
        state=state,
        language=language,
        timezone=timezone,
        invite_code=new_invite_code(),
    )
    session.add(cluster)
    await session.flush()
    audit.record(session, actor_user_id=None, action="cluster.create", cluster_id=cluster.id)
    await session.commit()
    return cluster


async def get_cluster_by_code(session: AsyncSession, *, code: str) -> Cluster | None:
    if not is_invite_code(code):
        return None
    result = await session.exec(select(Cluster).where(Cluster.invite_code == code))
    return result.first()


async def require_cluster(session: AsyncSession, *, code: str) -> Cluster:
    cluster = await get_cluster_by_code(session, code=code)
    if cluster is None:
        raise ClusterError(
            f"No cluster has the code {code!r}; run `cluster-bot cluster list` to see the codes."
        )
    return cluster


@dataclass(frozen=True)
class ClusterSummary:
    cluster: Cluster
    members: int
    cdas: int


async def list_clusters(session: AsyncSession) -> list[ClusterSummary]:
    members = (
        select(Membership.cluster_id, func.count().label("n"))
        .group_by(Membership.cluster_id)
        .subquery()
    )
    cdas = (
        select(CdaAssignment.cluster_id, func.count().label("n"))
        .group_by(CdaAssignment.cluster_id)
        .subquery()
    )
    rows = await session.exec(
        select(Cluster, func.coalesce(members.c.n, 0), func.coalesce(cdas.c.n, 0))
        .outerjoin(members, members.c.cluster_id == Cluster.id)
        .outerjoin(cdas, cdas.c.cluster_id == Cluster.id)
        .order_by(col(Cluster.id))
    )
    return [ClusterSummary(cluster, int(m), int(c)) for cluster, m, c in rows.all()]


async def add_cda(session: AsyncSession, *, telegram_user_id: int, cluster: Cluster) -> CdaAssignment:
    if telegram_user_id <= 0:
        raise ClusterError("A Telegram user id is a positive number; ask the CDA to send /start to @userinfobot.")
    existing = await session.exec(
        select(CdaAssignment).where(
            CdaAssignment.telegram_user_id == telegram_user_id,
            CdaAssignment.cluster_id == cluster.id,
        )
    )
    if existing.first() is not None:
        raise ClusterError(f"User {telegram_user_id} is already a CDA of {cluster.name!r}.")
    assignment = CdaAssignment(telegram_user_id=telegram_user_id, cluster_id=cluster.id)
    session.add(assignment)
    audit.record(
        session,
        actor_user_id=None,
        action="cda.add",
        cluster_id=cluster.id,
        subject=str(telegram_user_id),
    )
    await session.commit()
    return assignment


async def clusters_of_cda(
    session: AsyncSession, *, telegram_user_id: int, global_cdas: frozenset[int]
) -> list[Cluster]:
    """The clusters this user may run as a CDA; empty for everyone else."""
    query = select(Cluster).order_by(col(Cluster.id))
    if telegram_user_id not in global_cdas:
        query = query.join(CdaAssignment).where(CdaAssignment.telegram_user_id == telegram_user_id)
    return list((await session.exec(query)).all())


async def cda_user_ids(session: AsyncSession) -> set[int]:
    result = await session.exec(select(CdaAssignment.telegram_user_id).distinct())
    return set(result.all())


async def invite_link(session: AsyncSession, *, cluster: Cluster) -> str | None:
    """The deep link, or None until the bot has learnt its username from getMe."""
    username = await get_value(session, key=BOT_USERNAME)
    return f"https://t.me/{username}?start={cluster.invite_code}" if username else None
