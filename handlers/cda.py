"""CDA commands of the skeleton: /invite and /stakeholders, and the refusal everyone else gets."""

from __future__ import annotations

import asyncio
import logging
from html import escape

from telegram import Update
from telegram.ext import ApplicationHandlerStop, CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import INVITE, STAKEHOLDERS
from bot.commands import CDA_ONLY, COORDINATOR_COMMANDS
from bot.context import ClusterContext
from bot.services import audit
from bot.services.clusters import invite_link
from bot.services.fields import ROLE_LABELS
from bot.services.poster import render_invite_poster
from bot.services.stakeholders import members_page
from handlers.common import inline, one_per_row, send
from models import Cluster

log = logging.getLogger(__name__)

PAGE_SIZE = 10


async def refuse(update: Update, context: ClusterContext, command: str) -> None:
    user_id = update.effective_user.id
    async with context.session() as session:
        audit.record(session, actor_user_id=user_id, action="refused", subject=f"/{command}")
        await session.commit()
    log.info("Refused /%s to user %s", command, user_id)
    await send(update, context.t("Sorry, only the CDA of a cluster can use this command."))


async def _my_cluster(context: ClusterContext, cluster_id: int) -> Cluster | None:
    """The cluster, if this user is its CDA: permission is checked on every click."""
    if cluster_id not in context.cda_cluster_ids:
        return None
    async with context.session() as session:
        return await session.get(Cluster, cluster_id)


async def _pick_cluster(update: Update, context: ClusterContext, command: str, prefix: str) -> Cluster | None:
    """The CDA's only cluster, or None after asking which one (or saying there is none)."""
    t = context.t
    if not context.is_cda:
        await refuse(update, context, command)
        return None
    async with context.session() as session:
        clusters = [await session.get(Cluster, cid) for cid in context.cda_cluster_ids]
    if not clusters:
        await send(
            update,
            t("There is no cluster for you yet. The operator creates one with: cluster-bot cluster create NAME"),
        )
        return None
    if len(clusters) == 1:
        return clusters[0]
    await send(
        update,
        t("Which cluster?"),
        reply_markup=one_per_row((cluster.name, f"{prefix}:{cluster.id}:0") for cluster in clusters),
    )
    return None


async def send_invite(update: Update, context: ClusterContext, cluster: Cluster) -> None:
    t = context.t
    async with context.session() as session:
        link = await invite_link(session, cluster=cluster)
    if link is None:
        await send(update, t("The invite link is not ready yet. Please try again in a minute."))
        return
    await send(
        update,
        t(
            "Invite link for {cluster}:\n{link}\n\n"
            "Share it in your WhatsApp groups, or print the poster below and put it up at meetings."
        ).format(cluster=escape(cluster.name), link=escape(link)),
        disable_web_page_preview=True,
    )
    poster = await asyncio.to_thread(
        render_invite_poster,
        title=cluster.name,
        link=link,
        caption=t("Scan with your phone camera to join on Telegram"),
    )
    await update.effective_chat.send_photo(poster, caption=escape(cluster.name))


async def invite(update: Update, context: ClusterContext) -> None:
    cluster = await _pick_cluster(update, context, "invite", INVITE)
    if cluster is not None:
        await send_invite(update, context, cluster)


async def on_invite_button(update: Update, context: ClusterContext) -> None:
    query = update.callback_query
    cluster_id = _int_part(query.data, 1)
    cluster = await _my_cluster(context, cluster_id) if cluster_id is not None else None
    if cluster is None:
        await query.answer(context.t("Sorry, only the CDA of a cluster can use this command."))
        return
    await query.answer()
    await send_invite(update, context, cluster)


def _int_part(data: str | None, index: int) -> int | None:
    try:
        return int((data or "").split(":")[index])
    except (IndexError, ValueError):
        return None


async def _render_members(context: ClusterContext, cluster: Cluster, page: int):
    t = context.t
    async with context.session() as session:
        result = await members_page(session, cluster_id=cluster.id, page=page, per_page=PAGE_SIZE)
    lines = [
        "<b>" + escape(cluster.name) + "</b>",
        t.ngettext("{count} member", "{count} members", result.total).format(count=t.number(result.total)),
        "",
    ]
    for role, label in ROLE_LABELS.items():
        if result.counts_by_role.get(role):
            lines.append(f"{escape(t(label))}: {t.number(result.counts_by_role[role])}")
    if result.members:
        lines.append("")
        first = result.page * PAGE_SIZE
        for number, member in enumerate(result.members, start=first + 1):
            role = t(ROLE_LABELS.get(member.role, ROLE_LABELS["other"]))
            enterprise = f", {escape(member.enterprise)}" if member.enterprise else ""
            lines.append(f"{t.number(number)}. {escape(member.name)}{enterprise} — {escape(role)}")
        lines.append("")
        lines.append(
            t("Page {page} of {pages}").format(page=t.number(result.page + 1), pages=t.number(result.pages))
        )
    buttons = []
    if result.page > 0:
        buttons.append(("◀", f"{STAKEHOLDERS}:{cluster.id}:{result.page - 1}"))
    if result.page + 1 < result.pages:
        buttons.append(("▶", f"{STAKEHOLDERS}:{cluster.id}:{result.page + 1}"))
    return "\n".join(lines), (inline([buttons]) if buttons else None)


async def list_stakeholders(update: Update, context: ClusterContext) -> None:
    cluster = await _pick_cluster(update, context, "stakeholders", STAKEHOLDERS)
    if cluster is not None:
        text, markup = await _render_members(context, cluster, 0)
        await send(update, text, reply_markup=markup)


async def on_stakeholders_button(update: Update, context: ClusterContext) -> None:
    query = update.callback_query
    cluster_id, page = _int_part(query.data, 1), _int_part(query.data, 2)
    cluster = await _my_cluster(context, cluster_id) if cluster_id is not None else None
    if cluster is None or page is None:
        await query.answer(context.t("Sorry, only the CDA of a cluster can use this command."))
        return
    await query.answer()
    text, markup = await _render_members(context, cluster, page)
    await query.edit_message_text(text, reply_markup=markup)


async def guard(update: Update, context: ClusterContext) -> None:
    """Runs before every CDA command: anyone without the right is refused (and logged) here,
    so no feature handler can forget it. Each handler still checks the cluster or activity."""
    command = (update.effective_message.text or "/").split()[0].lstrip("/").split("@")[0].lower()
    allowed = context.is_cda or (context.is_coordinator and command in dict(COORDINATOR_COMMANDS))
    if not allowed:
        await refuse(update, context, command)
        raise ApplicationHandlerStop


GUARD = CommandHandler(list(CDA_ONLY), guard, filters=filters.ChatType.PRIVATE)

HANDLERS = [
    CommandHandler("invite", invite, filters=filters.ChatType.PRIVATE),
    CommandHandler("stakeholders", list_stakeholders, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_invite_button, pattern=rf"^{INVITE}:"),
    CallbackQueryHandler(on_stakeholders_button, pattern=rf"^{STAKEHOLDERS}:"),
]
