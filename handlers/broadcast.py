"""/broadcast: compose, per-language versions, audience, schedule, confirm; live progress.

The dialog is a dialog_state row (flow "bcs"), committed at every step. Every button and every
typed answer checks again, on the server, that this user may still act on the cluster (a CDA)
or the activity (a coordinator, whose audience is always that activity's people).

Buttons outside the dialog carry a broadcast id and are checked against it on every press:
``bcf:<id>`` lists who did not get a broadcast, ``bcx:<id>`` cancels a scheduled one.
"""

from __future__ import annotations

import functools
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import N_
from bot.languages import LANGUAGES
from bot.services import audit, broadcasts, dialogs
from bot.services.broadcasts import DEFAULT, FAILURES_PREFIX, HtmlProblem, WhenProblem
from bot.services.fields import ROLE_LABELS
from handlers.common import (
    answer_stale,
    clear_flow,
    inline,
    load_flow,
    mark_answered,
    one_per_row,
    save_step,
    send,
)
from models import Activity, Cluster
from models.stakeholder import StakeholderStatus

FLOW = "bcs"
CANCEL_PREFIX = "bcx"

AUDIENCE_LABELS: dict[str, str] = {
    "all": N_("Everyone in the cluster"),
    "role": N_("One role"),
    "language": N_("One language"),
    "activity": N_("The people of one activity"),
}
# Telegram formatting the user applied with the app's own buttons; the text is then taken as
# Telegram renders it (text_html) rather than read as typed HTML.
FORMATTING_ENTITIES = frozenset({
    "bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link",
    "text_mention", "blockquote", "expandable_blockquote", "custom_emoji",
})  # fmt: skip
REFUSAL = N_("Sorry, only the CDA of a cluster can use this command.")


# ---------------------------------------------------------------------- state and scope


_state = load_flow


_save = functools.partial(save_step, flow=FLOW)


_clear = clear_flow


def _allowed(context: ClusterContext, data: dict[str, Any]) -> bool:
    """Whether this user may still act on what the dialog is about (rights can be taken away)."""
    if data.get("coordinator"):
        if data.get("activity_id") is None:  # still choosing which of their activities
            return context.is_coordinator
        return data["activity_id"] in context.coordinated_activity_ids
    if not context.is_cda:
        return False
    cluster_id = data.get("cluster_id")
    return cluster_id is None or cluster_id in context.cda_cluster_ids


async def _refuse(update: Update, context: ClusterContext, subject: str) -> None:
    async with context.session() as session:
        audit.record(session, actor_user_id=context._user_id, action="refused", subject=subject)
        await session.commit()
    query = update.callback_query
    if query is not None:
        await query.answer(context.t(REFUSAL), show_alert=True)
    else:
        await send(update, context.t(REFUSAL))


def _zone(cluster: Cluster | None, context: ClusterContext) -> ZoneInfo:
    return ZoneInfo(cluster.timezone) if cluster else context.t.zone


# ---------------------------------------------------------------------- the command


async def broadcast(update: Update, context: ClusterContext) -> None:
    t = context.t
    if context.is_cda:
        async with context.session() as session:
            clusters = [c for cid in context.cda_cluster_ids if (c := await session.get(Cluster, cid))]
        if not clusters:
            await send(update, t("There is no cluster for you yet. The operator creates one with: cluster-bot cluster create NAME"))
            return
        if len(clusters) == 1:
            await _ask(update, context, "text", {"cluster_id": clusters[0].id, "texts": {}})
        else:
            await _ask(update, context, "cluster", {"texts": {}})
        return
    if context.is_coordinator:
        async with context.session() as session:
            mine = await broadcasts.activities_of(session, activity_ids=context.coordinated_activity_ids)
        if not mine:
            await _refuse(update, context, "/broadcast")
            return
        data: dict[str, Any] = {"coordinator": True, "texts": {}}
        if len(mine) == 1:
            data.update(cluster_id=mine[0].cluster_id, activity_id=mine[0].id, audience={"kind": "activity", "value": mine[0].id})
            await _ask(update, context, "text", data)
        else:
            await _ask(update, context, "activity", data)
        return
    await _refuse(update, context, "/broadcast")


# ---------------------------------------------------------------------- asking each step


async def _ask(update: Update, context: ClusterContext, step: str, data: dict[str, Any]) -> None:
    """Store the step and show its question; also used to show the current step again."""
    t = context.t
    await _save(context, step, data)
    if step == "cluster":
        async with context.session() as session:
            clusters = [c for cid in context.cda_cluster_ids if (c := await session.get(Cluster, cid))]
        await send(update, t("Which cluster is the broadcast for?"),
                   reply_markup=one_per_row((c.name, step_button(FLOW, "cluster", str(c.id))) for c in clusters))
    elif step in ("activity", "pick"):
        async with context.session() as session:
            if step == "activity":
                found = await broadcasts.activities_of(session, activity_ids=context.coordinated_activity_ids)
            else:
                found = await broadcasts.activities_of(session, cluster_ids=[data["cluster_id"]])
        if not found:
            await send(update, t("There are no activities yet. Create one with /activity."))
            if step == "pick":
                await _ask(update, context, "audience", data)
            else:
                await _clear(context)
            return
        await send(update, t("Which activity's people should receive it?"), reply_markup=one_per_row(
            (f"{a.year} — {broadcasts.activity_title(a, t.language)}"[:60], step_button(FLOW, step, str(a.id))) for a in found[:30]
        ))
    elif step == "text":
        await send(update, escape(t(
            "Write the notice. You can format it with Telegram's own buttons, or with HTML tags: "
            "<b>bold</b>, <i>italic</i>, <u>underline</u>, <a href=\"https://...\">link</a>.\n"
            "People whose language has no version of its own will get this text."
        )))
    elif step == "versions":
        versions = [t("Default")] + [LANGUAGES[code] for code in data["texts"] if code != DEFAULT]
        await send(update, t("Versions so far: {versions}\n\nAdd a version in another language, or continue.").format(
            versions=escape(", ".join(versions))), reply_markup=inline([
                [(t("➕ Add a language version"), step_button(FLOW, "versions", "add"))],
                [(t("➡️ Continue"), step_button(FLOW, "versions", "next")), (t("Cancel"), step_button(FLOW, "versions", "cancel"))],
            ]))
    elif step == "vlang":
        codes = [code for code in LANGUAGES if code not in data["texts"]]
        buttons = [(LANGUAGES[code], step_button(FLOW, "vlang", code)) for code in codes]
        await send(update, t("Which language is this version for?"),
                   reply_markup=inline(buttons[i : i + 2] for i in range(0, len(buttons), 2)))
    elif step == "vtext":
        await send(update, t("Write the notice in {language}.").format(language=LANGUAGES[data["pending"]]))
    elif step == "audience":
        await send(update, t("Who should receive it?"), reply_markup=one_per_row(
            (t(label), step_button(FLOW, "audience", kind)) for kind, label in AUDIENCE_LABELS.items()))
    elif step == "role":
        await send(update, t("Which role?"), reply_markup=one_per_row(
            (t(label), step_button(FLOW, "role", role)) for role, label in ROLE_LABELS.items()))
    elif step == "language":
        await send(update, t("Which language?"), reply_markup=one_per_row(
            (name, step_button(FLOW, "language", code)) for code, name in LANGUAGES.items()))
    elif step == "when":
        await send(update, t("When should it be sent?"), reply_markup=inline([
            [(t("📤 Send now"), step_button(FLOW, "when", "now"))],
            [(t("🕒 At a date and time"), step_button(FLOW, "when", "later"))],
        ]))
    elif step == "at":
        async with context.session() as session:
            cluster = await session.get(Cluster, data["cluster_id"])
        await send(update, t("Type the date and time ({zone} time), for example 25/12/2026 18:30.").format(
            zone=escape(str(_zone(cluster, context)))))
    elif step == "confirm":
        await _confirm(update, context, data)


async def _audience_label(context: ClusterContext, audience: dict[str, Any]) -> str:
    t = context.t
    kind, value = audience["kind"], audience.get("value")
    if kind == "role":
        return t(ROLE_LABELS.get(value, ROLE_LABELS["other"]))
    if kind == "language":
        return LANGUAGES.get(value, value)
    if kind == "activity":
        async with context.session() as session:
            activity = await session.get(Activity, int(value))
        return broadcasts.activity_title(activity, t.language) if activity else "—"
    return t(AUDIENCE_LABELS["all"])


async def _confirm(update: Update, context: ClusterContext, data: dict[str, Any]) -> None:
    t = context.t
    async with context.session() as session:
        members = await broadcasts.audience_members(session, cluster_id=data["cluster_id"], audience=data["audience"])
        cluster = await session.get(Cluster, data["cluster_id"])
    if not members:
        await send(update, t("Nobody is in this audience yet. Please choose another."))
        if data.get("coordinator"):
            await _clear(context)
        else:
            await _ask(update, context, "audience", data)
        return
    by_language: dict[str, int] = {}
    for member in members:
        version = member.language if member.language in data["texts"] else DEFAULT
        by_language[version] = by_language.get(version, 0) + 1
    versions = ", ".join(
        f"{t('Default') if code == DEFAULT else LANGUAGES[code]}: {t.number(count)}" for code, count in sorted(by_language.items())
    )
    when = t("now") if not data.get("at") else t.datetime(datetime.fromisoformat(data["at"]).astimezone(_zone(cluster, context)), "medium")
    text = "\n".join([
        t("<b>Check the broadcast</b>"),
        t("To: {audience} ({count})").format(
            audience=escape(await _audience_label(context, data["audience"])),
            count=t.ngettext("{count} person", "{count} people", len(members)).format(count=t.number(len(members))),
        ),
        t("Versions received: {versions}").format(versions=escape(versions)),
        t("When: {when}").format(when=escape(when)),
    ])
    blocked = sum(1 for member in members if member.status == StakeholderStatus.UNREACHABLE)
    if blocked:
        text += "\n" + t.ngettext(
            "{count} of them has blocked the bot and will be skipped.",
            "{count} of them have blocked the bot and will be skipped.",
            blocked,
        ).format(count=t.number(blocked))
    await send(update, text, reply_markup=inline([[
        (t("📤 Send"), step_button(FLOW, "confirm", "send")), (t("Cancel"), step_button(FLOW, "confirm", "cancel")),
    ]]))


# ---------------------------------------------------------------------- buttons


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    if not (context.is_cda or context.is_coordinator):
        await _refuse(update, context, "/broadcast button")
        return
    button = StepButton.parse(query.data or "")
    state = await _state(context)
    if button is None or state is None or state.flow != FLOW or state.step != button.step:
        await answer_stale(query, t)
        if state is not None and state.flow == FLOW and _allowed(context, dict(state.data)):
            await _ask(update, context, state.step, dict(state.data))
        return
    data = dict(state.data)
    if not _allowed(context, data):
        await _clear(context)
        await _refuse(update, context, "/broadcast button")
        return
    step, value = button.step, button.value
    if step == "cluster":
        cluster_id = int(value) if value.isdigit() else 0
        if cluster_id not in context.cda_cluster_ids:
            await _refuse(update, context, "/broadcast cluster")
            return
        async with context.session() as session:
            cluster = await session.get(Cluster, cluster_id)
        await mark_answered(query, cluster.name if cluster else value)
        await _ask(update, context, "text", {**data, "cluster_id": cluster_id})
    elif step == "activity":
        activity_id = int(value) if value.isdigit() else 0
        if activity_id not in context.coordinated_activity_ids:
            await _refuse(update, context, "/broadcast activity")
            return
        async with context.session() as session:
            activity = await session.get(Activity, activity_id)
        await mark_answered(query, broadcasts.activity_title(activity, t.language))
        await _ask(update, context, "text", {
            **data, "cluster_id": activity.cluster_id, "activity_id": activity_id, "audience": {"kind": "activity", "value": activity_id},
        })
    elif step == "versions":
        await _on_versions(update, context, query, value, data)
    elif step == "vlang":
        if value not in LANGUAGES or value in data["texts"]:
            await answer_stale(query, t)
            await _ask(update, context, "vlang", data)
            return
        await mark_answered(query, LANGUAGES[value])
        await _ask(update, context, "vtext", {**data, "pending": value})
    elif step == "audience":
        if value not in AUDIENCE_LABELS:
            await answer_stale(query, t)
            await _ask(update, context, "audience", data)
            return
        await mark_answered(query, t(AUDIENCE_LABELS[value]))
        if value == "all":
            await _ask(update, context, "when", {**data, "audience": {"kind": "all", "value": None}})
        else:
            await _ask(update, context, {"role": "role", "language": "language", "activity": "pick"}[value], data)
    elif step in ("role", "language"):
        valid = ROLE_LABELS if step == "role" else LANGUAGES
        if value not in valid:
            await answer_stale(query, t)
            await _ask(update, context, step, data)
            return
        await mark_answered(query, t(ROLE_LABELS[value]) if step == "role" else LANGUAGES[value])
        await _ask(update, context, "when", {**data, "audience": {"kind": step, "value": value}})
    elif step == "pick":
        async with context.session() as session:
            activity = await session.get(Activity, int(value)) if value.isdigit() else None
        # The id came from a button: it must be an activity of the cluster this CDA runs.
        if activity is None or activity.cluster_id != data["cluster_id"] or activity.cluster_id not in context.cda_cluster_ids:
            await _refuse(update, context, "/broadcast activity")
            return
        await mark_answered(query, broadcasts.activity_title(activity, t.language))
        await _ask(update, context, "when", {**data, "audience": {"kind": "activity", "value": activity.id}})
    elif step == "when":
        if value == "now":
            await mark_answered(query, t("📤 Send now"))
            await _ask(update, context, "confirm", {**data, "at": None})
        elif value == "later":
            await mark_answered(query, t("🕒 At a date and time"))
            await _ask(update, context, "at", data)
        else:
            await answer_stale(query, t)
    elif step == "confirm":
        if value == "send":
            await mark_answered(query, t("📤 Send"))
            await _send_broadcast(update, context, data)
        else:
            await mark_answered(query, t("Cancel"))
            await _clear(context)
            await send(update, t("Cancelled. Nothing was sent."))
    else:
        await answer_stale(query, t)


async def _on_versions(update: Update, context: ClusterContext, query, value: str, data: dict[str, Any]) -> None:
    t = context.t
    if value == "add":
        await mark_answered(query, t("➕ Add a language version"))
        await _ask(update, context, "vlang", data)
    elif value == "next":
        await mark_answered(query, t("➡️ Continue"))
        await _ask(update, context, "when" if data.get("coordinator") else "audience", data)
    else:
        await mark_answered(query, t("Cancel"))
        await _clear(context)
        await send(update, t("Cancelled. Nothing was sent."))


# ---------------------------------------------------------------------- typed answers


def _typed_html(message: Message) -> str:
    if any(entity.type in FORMATTING_ENTITIES for entity in message.entities or ()):
        return message.text_html
    return message.text or ""


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    data = dict(state.data)
    if not _allowed(context, data):
        await _clear(context)
        await _refuse(update, context, "/broadcast")
        return
    if state.step in ("text", "vtext"):
        await _take_text(update, context, state.step, data)
    elif state.step == "at":
        async with context.session() as session:
            cluster = await session.get(Cluster, data["cluster_id"])
        try:
            moment = broadcasts.parse_when(update.effective_message.text or "", zone=_zone(cluster, context))
        except WhenProblem as problem:
            await send(update, t(problem.msgid))
            return
        await _ask(update, context, "confirm", {**data, "at": moment.isoformat()})
    else:
        await send(update, t("Please use the buttons below."))
        await _ask(update, context, state.step, data)


async def _take_text(update: Update, context: ClusterContext, step: str, data: dict[str, Any]) -> None:
    t = context.t
    message = update.effective_message
    if not message.text:
        await send(update, t("Please write the notice as a text message."))
        return
    try:
        text = broadcasts.check_html(_typed_html(message))
    except HtmlProblem as problem:
        # The explanation quotes tags, so it is shown as plain text.
        await send(update, escape(t(problem.msgid).format(**problem.values)) + "\n\n" + escape(t("Please correct the text and send it again.")))
        return
    await send(update, t("Recipients will see exactly this:"))
    try:
        await send(update, text)
    except BadRequest as error:
        await send(update, t("Telegram refused this text: {error}. Please correct it and send it again.").format(error=escape(str(error))))
        return
    language = DEFAULT if step == "text" else data.pop("pending")
    data["texts"] = {**data["texts"], language: text}
    await _ask(update, context, "versions", data)


# ---------------------------------------------------------------------- sending


async def _send_broadcast(update: Update, context: ClusterContext, data: dict[str, Any]) -> None:
    t = context.t
    async with context.session() as session:
        activity = None
        if data["audience"]["kind"] == "activity":
            activity = await session.get(Activity, int(data["audience"]["value"]))
        cluster = await session.get(Cluster, data["cluster_id"])
    ok = cluster is not None and _allowed(context, data) and (
        activity is None or (activity.cluster_id == cluster.id and (not data.get("coordinator") or activity.id in context.coordinated_activity_ids))
    )
    if not ok or (data.get("coordinator") and activity is None):
        await _clear(context)
        await _refuse(update, context, "/broadcast send")
        return
    at = datetime.fromisoformat(data["at"]) if data.get("at") else None
    if at is None:
        # The progress message is the reply to this press, sent at once; the sender edits it.
        progress = await send(update, t("⏳ Preparing the broadcast…"))
        async with context.session() as session:
            row = await broadcasts.create_broadcast(
                session, cluster_id=cluster.id, texts=data["texts"], audience=data["audience"], scheduled_at=None,
                created_by=context._user_id, reply_language=t.language, progress_message_id=progress.message_id,
            )
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
        async with context.session() as session:
            await broadcasts.start_broadcast(session, broadcast_id=row.id)
            row = await broadcasts.get_broadcast(session, broadcast_id=row.id)
        sender = context.deps.extra.get("sender")
        if sender is not None:
            sender.notify()
        try:
            await progress.edit_text(broadcasts.progress_text(t, row, {}))
        except BadRequest:
            pass
        return
    async with context.session() as session:
        row = await broadcasts.create_broadcast(
            session, cluster_id=cluster.id, texts=data["texts"], audience=data["audience"], scheduled_at=at,
            created_by=context._user_id, reply_language=t.language,
        )
        await dialogs.clear_state(session, telegram_user_id=context._user_id)
    await send(
        update,
        t("🕒 Scheduled for {when}. It will go out then, even if the bot restarts in between.").format(
            when=escape(t.datetime(at.astimezone(_zone(cluster, context)), "medium"))),
        reply_markup=inline([[(t("Cancel this broadcast"), f"{CANCEL_PREFIX}:{row.id}")]]),
    )


async def _own_broadcast(update: Update, context: ClusterContext):
    """The broadcast a bcf/bcx button names, if this user may manage it (else refused)."""
    query = update.callback_query
    try:
        broadcast_id = int((query.data or "").split(":")[1])
    except (IndexError, ValueError):
        broadcast_id = 0
    async with context.session() as session:
        row = await broadcasts.get_broadcast(session, broadcast_id=broadcast_id)
    if row is None or not broadcasts.may_manage(
        row, cda_cluster_ids=list(getattr(context, "cda_cluster_ids", []) or []), coordinated_activity_ids=context.coordinated_activity_ids
    ):
        await _refuse(update, context, f"/broadcast {query.data}")
        return None
    return row


async def on_failures(update: Update, context: ClusterContext) -> None:
    t = context.t
    row = await _own_broadcast(update, context)
    if row is None:
        return
    await update.callback_query.answer()
    async with context.session() as session:
        found, total = await broadcasts.failures(session, broadcast_id=row.id)
    if not total:
        await send(update, t("Everyone received this broadcast."))
        return
    lines = [t.ngettext("{count} person did not get the broadcast:", "{count} people did not get the broadcast:", total).format(count=t.number(total))]
    for failure in found:
        name = escape(failure.name) if failure.name else t("(erased)")
        reason = t("unreachable") if failure.unreachable else t("failed: {reason}").format(reason=escape((failure.error or "")[:80]))
        lines.append(f"• {name} — {reason}")
    if total > len(found):
        lines.append(t("…and {count} more").format(count=t.number(total - len(found))))
    await send(update, "\n".join(lines))


async def on_cancel(update: Update, context: ClusterContext) -> None:
    t = context.t
    row = await _own_broadcast(update, context)
    if row is None:
        return
    async with context.session() as session:
        cancelled = await broadcasts.cancel_broadcast(session, broadcast_id=row.id, actor_user_id=context._user_id)
    if cancelled:
        await mark_answered(update.callback_query, t("Cancelled. Nothing was sent."))
    else:
        await update.callback_query.answer(t("This broadcast has already started or was cancelled."), show_alert=True)


HANDLERS = [
    CommandHandler("broadcast", broadcast, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
    CallbackQueryHandler(on_failures, pattern=rf"^{FAILURES_PREFIX}:"),
    CallbackQueryHandler(on_cancel, pattern=rf"^{CANCEL_PREFIX}:"),
]
