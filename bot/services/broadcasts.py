"""Broadcasts: a CDA's (or an activity coordinator's) notice to many stakeholders.

A broadcast is a row with its HTML text per language ("default" for everyone else), its audience
and when to send it. Starting it (now, or when due) is one transaction that moves it from
``scheduled`` to ``sending`` and queues one outbox row per recipient, so it happens exactly once
however many processes look. When no row is left queued or in flight it moves to ``done`` and a
summary for its author is queued in the same transaction.

``audience`` holds ``kind`` (all / role / language / activity), ``value``, and ``reply_language``:
the author's language for the progress message and the summary, which may be sent by another
process long after the author's last update.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import N_, Translator
from bot.services import audit, outbox
from bot.services.surveys.engine import normalise_digits
from models import (
    Activity,
    ActivityPerson,
    Broadcast,
    Cluster,
    Membership,
    OutboxMessage,
    OutboxStatus,
    Stakeholder,
)
from models.action_plan import ActivityRole
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

PURPOSE = "broadcast"
PROGRESS_PURPOSE = "broadcast_progress"
SUMMARY_PURPOSE = "broadcast_summary"
# Callback data of the summary's button: ``bcf:<broadcast id>`` lists who did not get it.
FAILURES_PREFIX = "bcf"

SCHEDULED, SENDING, DONE, CANCELLED = "scheduled", "sending", "done", "cancelled"
AUDIENCE_KINDS = ("all", "role", "language", "activity")
DEFAULT = "default"
MAX_LENGTH = 4096
FAILURES_SHOWN = 50


# ---------------------------------------------------------------------- HTML


class HtmlProblem(ValueError):
    """Text Telegram would refuse; ``msgid`` explains it, ``values`` fill its placeholders."""

    def __init__(self, msgid: str, **values: Any) -> None:
        super().__init__(msgid)
        self.msgid, self.values = msgid, values


# Tags Telegram's HTML parse mode accepts, with the attributes each may carry.
ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(), "strong": frozenset(), "i": frozenset(), "em": frozenset(),
    "u": frozenset(), "ins": frozenset(), "s": frozenset(), "strike": frozenset(),
    "del": frozenset(), "tg-spoiler": frozenset(), "span": frozenset({"class"}),
    "a": frozenset({"href"}), "code": frozenset({"class"}), "pre": frozenset(),
    "blockquote": frozenset({"expandable"}), "tg-emoji": frozenset({"emoji-id"}),
}  # fmt: skip
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>")
_ATTRIBUTE = re.compile(r"""\s*([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")


def _attributes(tag: str, raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    position = 0
    raw = raw.strip()
    while position < len(raw):
        match = _ATTRIBUTE.match(raw, position)
        if match is None or match.end() == position:
            raise HtmlProblem(N_("The tag <{tag}> has attributes Telegram cannot read."), tag=tag)
        name = match.group(1).lower()
        value = next((v for v in match.group(2, 3, 4) if v is not None), "")
        if name not in ALLOWED_TAGS[tag]:
            raise HtmlProblem(N_("The tag <{tag}> cannot have the attribute \"{attribute}\"."), tag=tag, attribute=name)
        found[name] = html.unescape(value)
        position = match.end()
    return found


def _check_attributes(tag: str, attributes: dict[str, str]) -> None:
    if tag == "a" and not attributes.get("href", "").strip():
        raise HtmlProblem(N_("A link needs an address: <a href=\"https://...\">text</a>."))
    if tag == "span" and attributes.get("class") != "tg-spoiler":
        raise HtmlProblem(N_("Telegram only accepts <span class=\"tg-spoiler\">."))
    if tag == "code" and not attributes.get("class", "language-").startswith("language-"):
        raise HtmlProblem(N_("The tag <{tag}> cannot have the attribute \"{attribute}\"."), tag=tag, attribute="class")


def check_html(text: str) -> str:
    """The text as Telegram's HTML parse mode will accept it, or HtmlProblem.

    Supported tags are checked and must nest properly; a ``<``, ``>`` or ``&`` that cannot be
    markup (``price < 500``, ``Q&A``) is escaped so that it shows as typed. What comes back is
    exactly what recipients are sent, and what the preview shows.
    """
    out: list[str] = []
    stack: list[str] = []
    visible = 0
    position = 0
    while position < len(text):
        char = text[position]
        if char == "<":
            match = _TAG.match(text, position)
            nxt = text[position + 1 : position + 2]
            if match is None:
                if nxt.isalpha() or nxt in ("/", "!"):
                    snippet = text[position : position + 20].split(">")[0]
                    raise HtmlProblem(N_("Telegram cannot read “{snippet}”. To show a < sign, write &lt;"), snippet=snippet)
                out.append("&lt;")
                visible += 1
                position += 1
                continue
            closing, tag, raw_attributes, self_closing = match.group(1), match.group(2).lower(), match.group(3), match.group(4)
            if tag not in ALLOWED_TAGS:
                raise HtmlProblem(
                    N_("Telegram does not support the tag {tag}. These work: {allowed}."),
                    tag=f"<{tag}>",
                    allowed='<b>, <i>, <u>, <s>, <a href="...">, <code>, <pre>, <blockquote>',
                )
            if self_closing:
                raise HtmlProblem(N_("The tag <{tag}> must have a closing </{tag}>."), tag=tag)
            if closing:
                if raw_attributes.strip():
                    raise HtmlProblem(N_("The closing tag </{tag}> cannot have attributes."), tag=tag)
                if not stack or stack[-1] != tag:
                    raise HtmlProblem(N_("</{tag}> does not close the last opened tag."), tag=tag)
                stack.pop()
                out.append(f"</{tag}>")
            else:
                attributes = _attributes(tag, raw_attributes)
                _check_attributes(tag, attributes)
                inside_code = [t for t in stack if t in ("pre", "code")]
                if inside_code and not (tag == "code" and stack[-1] == "pre"):
                    raise HtmlProblem(N_("Nothing can be formatted inside {tag}."), tag=f"<{inside_code[-1]}>")
                if tag == "blockquote" and "blockquote" in stack:
                    raise HtmlProblem(N_("A {tag} cannot contain another one."), tag="<blockquote>")
                stack.append(tag)
                rendered = "".join(
                    f' {name}="{html.escape(value, quote=True)}"' if value or name != "expandable" else f" {name}"
                    for name, value in attributes.items()
                )
                out.append(f"<{tag}{rendered}>")
            position = match.end()
        elif char == "&":
            match = _ENTITY.match(text, position)
            if match is None:
                out.append("&amp;")
                position += 1
            else:
                out.append(match.group())
                position = match.end()
            visible += 1
        elif char == ">":
            out.append("&gt;")
            visible += 1
            position += 1
        else:
            out.append(char)
            visible += 1
            position += 1
    if stack:
        raise HtmlProblem(N_("The tag <{tag}> is not closed: add </{tag}>."), tag=stack[-1])
    if not html.unescape(re.sub(r"<[^>]*>", "", "".join(out))).strip():
        raise HtmlProblem(N_("The message is empty. Please write the text of the notice."))
    if visible > MAX_LENGTH:
        raise HtmlProblem(
            N_("The message is too long: {length} characters, Telegram allows {limit}."), length=visible, limit=MAX_LENGTH
        )
    return "".join(out)


def plain_excerpt(text: str, limit: int = 40) -> str:
    """The first words of an HTML text, tags removed, for labels (returned unescaped)."""
    plain = " ".join(html.unescape(re.sub(r"<[^>]*>", "", text)).split())
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------- when


class WhenProblem(ValueError):
    def __init__(self, msgid: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid


_WHEN_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %I:%M %p", "%d/%m/%y %H:%M", "%d/%m/%y %I:%M %p")


def parse_when(text: str, *, zone: ZoneInfo, now: datetime | None = None) -> datetime:
    """A date and time typed in the cluster's zone ("25/12/2026 18:30"), as an aware UTC time."""
    cleaned = normalise_digits(text).strip().upper().replace(".", "/").replace("-", "/")
    cleaned = re.sub(r"(\d{1,2})/(\d{2})(?=\s*(?:[AP]M)?$)", r"\1:\2", cleaned) if cleaned.count("/") == 3 else cleaned
    cleaned = re.sub(r"\s+", " ", cleaned.replace("AM", " AM").replace("PM", " PM")).strip()
    for pattern in _WHEN_FORMATS:
        try:
            local = datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
        moment = local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
        now = now or utcnow()
        if moment <= now:
            raise WhenProblem(N_("That time has passed. Please give a time in the future."))
        if moment > now + timedelta(days=366):
            raise WhenProblem(N_("Please pick a time within the next year."))
        return moment
    raise WhenProblem(N_("Please write the date and time as day/month/year hours:minutes, for example 25/12/2026 18:30."))


# ---------------------------------------------------------------------- audience


def text_for(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts[DEFAULT]


async def activities_of(session: AsyncSession, *, cluster_ids: list[int] | None = None, activity_ids: list[int] | None = None) -> list[Activity]:
    query = select(Activity).where(Activity.status != "cancelled").order_by(col(Activity.year).desc(), col(Activity.id))
    if cluster_ids is not None:
        query = query.where(col(Activity.cluster_id).in_(cluster_ids or [-1]))
    if activity_ids is not None:
        query = query.where(col(Activity.id).in_(activity_ids or [-1]))
    return list((await session.exec(query)).all())


def activity_title(activity: Activity, language: str, fallback: str = "en") -> str:
    return activity.title.get(language) or activity.title.get(fallback) or next(iter(activity.title.values()), "") or f"#{activity.id}"


async def audience_members(session: AsyncSession, *, cluster_id: int, audience: dict[str, Any]) -> list[Stakeholder]:
    """Who a broadcast goes to. Unreachable members are included: their rows are stored as skipped,
    so the author sees how many the notice could not reach. Members who left are not."""
    kind, value = audience.get("kind", "all"), audience.get("value")
    query = select(Stakeholder).where(Stakeholder.status != StakeholderStatus.LEFT)
    if kind == "activity":
        people = select(ActivityPerson.stakeholder_id).where(
            ActivityPerson.activity_id == int(value),
            col(ActivityPerson.role).in_([ActivityRole.LEAD, ActivityRole.PARTICIPANT]),
        )
        query = query.where(col(Stakeholder.id).in_(people))
    else:
        query = query.join(Membership).where(Membership.cluster_id == cluster_id)
        if kind == "role":
            query = query.where(Stakeholder.role == value)
        elif kind == "language":
            query = query.where(Stakeholder.language == value)
    return list((await session.exec(query.order_by(col(Stakeholder.id)))).all())


def may_manage(broadcast: Broadcast, *, cda_cluster_ids: list[int], coordinated_activity_ids: list[int]) -> bool:
    """The cluster's CDA, or the coordinator of the activity the broadcast went to."""
    if broadcast.cluster_id in cda_cluster_ids:
        return True
    audience = broadcast.audience or {}
    return audience.get("kind") == "activity" and int(audience.get("value") or 0) in coordinated_activity_ids


# ---------------------------------------------------------------------- lifecycle


async def create_broadcast(
    session: AsyncSession,
    *,
    cluster_id: int,
    texts: dict[str, str],
    audience: dict[str, Any],
    scheduled_at: datetime | None,
    created_by: int,
    reply_language: str,
    progress_message_id: int | None = None,
) -> Broadcast:
    """Store a confirmed broadcast (``scheduled_at`` None: now) with its audit entry."""
    if DEFAULT not in texts:
        raise ValueError("a broadcast needs a default text")
    broadcast = Broadcast(
        cluster_id=cluster_id,
        texts={language: check_html(text) for language, text in texts.items()},
        audience={"kind": audience["kind"], "value": audience.get("value"), "reply_language": reply_language},
        scheduled_at=scheduled_at or utcnow(),
        status=SCHEDULED,
        created_by=created_by,
        progress_chat_id=created_by,
        progress_message_id=progress_message_id,
    )
    session.add(broadcast)
    await session.flush()
    audit.record(
        session,
        actor_user_id=created_by,
        action="broadcast.create",
        cluster_id=cluster_id,
        subject=str(broadcast.id),
        detail={"audience": audience["kind"], "languages": sorted(texts), "scheduled": scheduled_at is not None},
    )
    await session.commit()
    return broadcast


async def set_progress_message(session: AsyncSession, *, broadcast_id: int, chat_id: int, message_id: int) -> None:
    await session.exec(
        update(Broadcast).where(col(Broadcast.id) == broadcast_id).values(progress_chat_id=chat_id, progress_message_id=message_id)
    )
    await session.commit()


async def cancel_broadcast(session: AsyncSession, *, broadcast_id: int, actor_user_id: int) -> bool:
    """Cancel a broadcast that has not started; False if it already started (or was cancelled)."""
    broadcast = await session.get(Broadcast, broadcast_id)
    result = await session.exec(
        update(Broadcast).where(col(Broadcast.id) == broadcast_id, Broadcast.status == SCHEDULED).values(status=CANCELLED)
    )
    if (result.rowcount or 0) != 1:
        await session.rollback()
        return False
    audit.record(session, actor_user_id=actor_user_id, action="broadcast.cancel", cluster_id=broadcast.cluster_id, subject=str(broadcast_id))
    await session.commit()
    return True


def _reply_translator(broadcast: Broadcast, cluster: Cluster | None) -> Translator:
    return Translator((broadcast.audience or {}).get("reply_language") or "en", cluster.timezone if cluster else "Asia/Kolkata")


async def start_broadcast(session: AsyncSession, *, broadcast_id: int) -> int:
    """Move a scheduled broadcast to ``sending`` and queue its messages, in one transaction.

    The conditional UPDATE is the guard: of two processes starting the same broadcast, the second
    finds it no longer ``scheduled`` (on PostgreSQL it waits for the first to commit) and does
    nothing. Returns how many rows were queued.
    """
    result = await session.exec(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, Broadcast.status == SCHEDULED)
        .values(status=SENDING, started_at=utcnow())
    )
    if (result.rowcount or 0) != 1:
        await session.rollback()
        return 0
    broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
    cluster = await session.get(Cluster, broadcast.cluster_id)
    members = await audience_members(session, cluster_id=broadcast.cluster_id, audience=broadcast.audience)
    broadcast.recipients = len(members)
    session.add(broadcast)
    drafts = []
    if broadcast.progress_message_id is None and broadcast.progress_chat_id:
        t = _reply_translator(broadcast, cluster)
        # Ahead of bulk rows queued in the last hour: the author should see progress start.
        drafts.append(
            outbox.Draft(
                chat_id=broadcast.progress_chat_id,
                text=progress_text(t, broadcast, {}),
                purpose=PROGRESS_PURPOSE,
                ref_id=broadcast.id,
                dedupe_key=f"bcs-progress:{broadcast.id}",
                not_before=utcnow() - timedelta(hours=1),
            )
        )
    drafts.extend(
        outbox.Draft(
            chat_id=member.chat_id,
            stakeholder_id=member.id,
            text=text_for(broadcast.texts, member.language),
            purpose=PURPOSE,
            ref_id=broadcast.id,
            dedupe_key=f"bcs:{broadcast.id}:{member.id}",
        )
        for member in members
    )
    return await outbox.enqueue(session, drafts=drafts)


async def start_due_broadcasts(sessionmaker) -> int:
    """Start every scheduled broadcast whose time has come (bot/jobs.py, every minute).

    Idempotent and safe to run in several processes at once; returns how many rows were queued.
    """
    async with sessionmaker() as session:
        due = await session.exec(
            select(Broadcast.id).where(Broadcast.status == SCHEDULED, col(Broadcast.scheduled_at) <= utcnow()).order_by(col(Broadcast.scheduled_at))
        )
        ids = list(due.all())
    queued = 0
    for broadcast_id in ids:
        async with sessionmaker() as session:
            queued += await start_broadcast(session, broadcast_id=broadcast_id)
    return queued


# ---------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Counts:
    total: int
    sent: int = 0
    unreachable: int = 0
    failed: int = 0
    pending: int = 0

    @classmethod
    def of(cls, total: int, by_status: dict[str, int]) -> Counts:
        return cls(
            total=total,
            sent=by_status.get(OutboxStatus.SENT, 0),
            unreachable=by_status.get(OutboxStatus.SKIPPED, 0),
            failed=by_status.get(OutboxStatus.FAILED, 0),
            pending=by_status.get(OutboxStatus.QUEUED, 0) + by_status.get(OutboxStatus.SENDING, 0),
        )


async def counts_of(session: AsyncSession, *, broadcast: Broadcast) -> Counts:
    return Counts.of(broadcast.recipients, await outbox.counts(session, purpose=PURPOSE, ref_id=broadcast.id))


def progress_text(t: Translator, broadcast: Broadcast, by_status: dict[str, int], *, finished: bool = False) -> str:
    counts = Counts.of(broadcast.recipients, by_status)
    title = html.escape(plain_excerpt(broadcast.texts.get(DEFAULT, "")))
    head = t("✅ Broadcast sent: “{title}”") if finished else t("📣 Sending the broadcast “{title}”")
    line = t("{sent} / {total} sent, {unreachable} unreachable").format(
        sent=t.number(counts.sent), total=t.number(counts.total), unreachable=t.number(counts.unreachable)
    )
    if counts.failed:
        line += "\n" + t("{count} failed").format(count=t.number(counts.failed))
    return head.format(title=title) + "\n" + line


def summary_text(t: Translator, broadcast: Broadcast, counts: Counts) -> str:
    lines = [
        t("📣 Broadcast finished: “{title}”").format(title=html.escape(plain_excerpt(broadcast.texts.get(DEFAULT, "")))),
        t.ngettext("{count} recipient", "{count} recipients", counts.total).format(count=t.number(counts.total)),
        t("✅ Sent: {count}").format(count=t.number(counts.sent)),
        t("🚫 Unreachable (blocked the bot or left Telegram): {count}").format(count=t.number(counts.unreachable)),
        t("⚠️ Failed: {count}").format(count=t.number(counts.failed)),
    ]
    return "\n".join(lines)


def failures_button(t: Translator, broadcast_id: int) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": t("List who did not get it"), "callback_data": f"{FAILURES_PREFIX}:{broadcast_id}"}]]}


async def finish_completed(session: AsyncSession) -> list[int]:
    """Mark ``done`` every sending broadcast with nothing queued or in flight, and queue its
    author's summary in the same transaction (so it is queued once). Returns their ids."""
    running = await session.exec(select(Broadcast).where(Broadcast.status == SENDING))
    finished = []
    for broadcast in list(running.all()):
        counts = await counts_of(session, broadcast=broadcast)
        if counts.pending:
            continue
        result = await session.exec(
            update(Broadcast)
            .where(col(Broadcast.id) == broadcast.id, Broadcast.status == SENDING)
            .values(status=DONE, finished_at=utcnow())
        )
        if (result.rowcount or 0) != 1:
            await session.rollback()
            continue
        drafts = []
        if broadcast.progress_chat_id:
            t = _reply_translator(broadcast, await session.get(Cluster, broadcast.cluster_id))
            drafts.append(
                outbox.Draft(
                    chat_id=broadcast.progress_chat_id,
                    text=summary_text(t, broadcast, counts),
                    purpose=SUMMARY_PURPOSE,
                    ref_id=broadcast.id,
                    reply_markup=failures_button(t, broadcast.id) if counts.failed or counts.unreachable else None,
                    dedupe_key=f"bcs-summary:{broadcast.id}",
                )
            )
        await outbox.enqueue(session, drafts=drafts)
        finished.append(broadcast.id)
    return finished


@dataclass(frozen=True)
class ProgressView:
    broadcast_id: int
    chat_id: int
    message_id: int
    text: str


async def _progress_message(session: AsyncSession, broadcast: Broadcast) -> tuple[int, int] | None:
    if broadcast.progress_chat_id and broadcast.progress_message_id:
        return broadcast.progress_chat_id, broadcast.progress_message_id
    # A scheduled broadcast's progress message went through the outbox; remember where it landed.
    found = await session.exec(
        select(OutboxMessage.chat_id, OutboxMessage.telegram_message_id).where(
            OutboxMessage.purpose == PROGRESS_PURPOSE,
            OutboxMessage.ref_id == broadcast.id,
            OutboxMessage.status == OutboxStatus.SENT,
        )
    )
    row = found.first()
    if row is None or row[1] is None:
        return None
    await set_progress_message(session, broadcast_id=broadcast.id, chat_id=row[0], message_id=row[1])
    return row[0], row[1]


async def progress_views(session: AsyncSession, *, also: list[int] = ()) -> list[ProgressView]:
    """The progress message of each running broadcast (and of ``also``, just finished)."""
    running = await session.exec(
        select(Broadcast).where((Broadcast.status == SENDING) | col(Broadcast.id).in_(list(also) or [-1]))
    )
    views = []
    for broadcast in list(running.all()):
        target = await _progress_message(session, broadcast)
        if target is None:
            continue
        cluster = await session.get(Cluster, broadcast.cluster_id)
        by_status = await outbox.counts(session, purpose=PURPOSE, ref_id=broadcast.id)
        text = progress_text(_reply_translator(broadcast, cluster), broadcast, by_status, finished=broadcast.status == DONE)
        views.append(ProgressView(broadcast.id, target[0], target[1], text))
    return views


@dataclass(frozen=True)
class Failure:
    name: str | None
    unreachable: bool
    error: str | None


async def failures(session: AsyncSession, *, broadcast_id: int, limit: int = FAILURES_SHOWN) -> tuple[list[Failure], int]:
    """Recipients who did not get the broadcast (first ``limit``), and how many there are."""
    where = (
        OutboxMessage.purpose == PURPOSE,
        OutboxMessage.ref_id == broadcast_id,
        col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.SKIPPED]),
    )
    total = (await session.exec(select(func.count()).select_from(OutboxMessage).where(*where))).one()
    rows = await session.exec(
        select(OutboxMessage.status, OutboxMessage.last_error, Stakeholder.name)
        .join(Stakeholder, col(Stakeholder.id) == OutboxMessage.stakeholder_id, isouter=True)
        .where(*where)
        .order_by(col(Stakeholder.name), col(OutboxMessage.id))
        .limit(limit)
    )
    found = [Failure(name, status == OutboxStatus.SKIPPED, error) for status, error, name in rows.all()]
    return found, int(total)


async def get_broadcast(session: AsyncSession, *, broadcast_id: int) -> Broadcast | None:
    return await session.get(Broadcast, broadcast_id)


def scheduled_for(broadcast: Broadcast) -> datetime | None:
    return as_utc(broadcast.scheduled_at)
