from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor_user_id: int | None,
    action: str,
    cluster_id: int | None = None,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction, so it commits with the change it explains."""
    entry = AuditEntry(
        actor_user_id=actor_user_id,
        action=action,
        cluster_id=cluster_id,
        subject=subject,
        detail=detail or {},
    )
    session.add(entry)
    return entry
