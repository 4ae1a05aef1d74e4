"""/meeting: call a meeting (title, time, venue, location, agenda, audience, activity, preview),
follow the answers, move or cancel it; and the invitees' side: RSVP and calendar buttons.

The CDA's dialog is a dialog_state row (flow ``mtg``), committed at every step. Buttons on
notices (``mtr`` answer, ``mtc`` calendar file, ``mtt`` tally refresh) carry ids and are checked
against the presser on every press.

How the calendar file reaches people: the outbox sends text, so every notice carries
"📅 Add to calendar"; pressing it sends that person a fresh .ics (their own answer as PARTSTAT,
the meeting's current revision as SEQUENCE) with send_document. Nobody is sent a file they did
not ask for, a file is never stale, and a bulk send stays within the text-message limits.

The tally: the CDA gets one tally message, edited in place as answers arrive, at most once every
TALLY_INTERVAL seconds per meeting (answers in between are shown by one deferred edit), and with
a 🔄 button that redraws it on demand, e.g. after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import datetime
from html import escape
from typing import Any

from babel.dates import format_time, get_timezone_name
from telegram import (
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Forbidden
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import audit, dialogs, ics
from bot.services import meetings as svc
from bot.services.fields import ROLE_LABELS
from handlers.cda import refuse
from handlers.common import (
    answer_stale,
    clear_flow,
    inline,
    is_skip,
    mark_answered,
    one_per_row,
    save_step,
    send,
)
from models import Cluster, Meeting
from models.base import as_utc, utcnow

log = logging.getLogger(__name__)

FLOW = "mtg"
TALLY_INTERVAL = 3.0
REFUSED = N_("Sorry, only the CDA of a cluster can use this command.")

# Steps of a new meeting, then of managing one.
MENU, CLUSTER, TITLE, WHEN, VENUE, LOCATION, AGENDA = "menu", "cluster", "title", "when", "venue", "location", "agenda"
AUDIENCE, ROLE, LANGUAGE, ACTIVITY, LINK, CONFIRM = "audience", "role", "language", "activity", "link", "confirm"
MANAGE, NEW_TIME, MOVE, DROP = "manage", "newtime", "move", "drop"
WHEN_QUESTION = N_("When is it? Write the date and time as day/month/year hours:minutes, for example {example} ({zone}).")
NEW_TIME_QUESTION = N_("What is the new date and time? Write it as day/month/year hours:minutes, for example {example} ({zone}).")
DRAFT_STEPS = (WHEN, VENUE, LOCATION, AGENDA, AUDIENCE, ROLE, LANGUAGE, ACTIVITY, LINK, CONFIRM)


def _local(context: ClusterContext, cluster: Cluster) -> Translator:
    """The user's language with the cluster's time zone: meeting times are the cluster's."""
    return Translator(context.language, cluster.timezone)


_save = functools.partial(save_step, flow=FLOW)


_clear = clear_flow


async def _cluster(context: ClusterContext, data: dict) -> Cluster | None:
    """The dialog's cluster, if this user is still its CDA (checked at every step)."""
    cluster_id = data.get("cluster_id")
    if cluster_id not in context.cda_cluster_ids:
        return None
    async with context.session() as session:
        return await session.get(Cluster, cluster_id)


async def _managed(context: ClusterContext, meeting_id: Any) -> tuple[Meeting, Cluster] | None:
    if not isinstance(meeting_id, int):
        return None
    async with context.session() as session:
        meeting = await session.get(Meeting, meeting_id)
        if not svc.may_manage(meeting, cda_cluster_ids=context.cda_cluster_ids):
            return None
        return meeting, await session.get(Cluster, meeting.cluster_id)


async def _refuse_press(update: Update, context: ClusterContext, subject: str) -> None:
    async with context.session() as session:
        audit.record(session, actor_user_id=context._user_id, action="refused", subject=subject)
        await session.commit()
    await update.callback_query.answer(context.t(REFUSED), show_alert=True)


# ---------------------------------------------------------------- /meeting and the menu


async def meeting_command(update: Update, context: ClusterContext) -> None:
    if not context.is_cda:
        await refuse(update, context, "meeting")
        return
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=context._user_id)
    if state is not None and state.flow == FLOW and state.step in DRAFT_STEPS:
        # A notice half written (perhaps before a restart) is not thrown away by /meeting.
        await send(update, context.t(
            "You are calling the meeting “{title}”. We continue where you left off; send /cancel to drop it."
        ).format(title=escape(state.data.get("title", ""))))
        await _ask(update, context, state.step, dict(state.data))
        return
    await _show_menu(update, context)


async def _show_menu(update: Update, context: ClusterContext) -> None:
    t = context.t
    async with context.session() as session:
        clusters = {cid: cluster for cid in context.cda_cluster_ids if (cluster := await session.get(Cluster, cid))}
        upcoming = await svc.upcoming_meetings(session, cluster_ids=list(clusters))
    if not clusters:
        await send(update, t("There is no cluster for you yet. The operator creates one with: cluster-bot cluster create NAME"))
        return
    await _save(context, MENU, {})
    several = len(clusters) > 1
    buttons = [(t("➕ Call a new meeting"), step_button(FLOW, MENU, "new"))]
    for meeting in upcoming:
        local = _local(context, clusters[meeting.cluster_id])
        label = f"{local.datetime(as_utc(meeting.starts_at), 'short')} — {meeting.title}"
        if several:
            label = f"{clusters[meeting.cluster_id].name}: {label}"
        buttons.append((label[:60], step_button(FLOW, MENU, str(meeting.id))))
    text = (
        t("Call a new meeting, or choose an upcoming one to see the answers, move it or cancel it.")
        if upcoming
        else t("There is no upcoming meeting. Call a new one?")
    )
    await send(update, text, reply_markup=one_per_row(buttons))


# ---------------------------------------------------------------- asking each step


async def _ask(update: Update, context: ClusterContext, step: str, data: dict) -> None:
    """Ask the question of ``step`` (used after every answer, and again after a bad one)."""
    t = context.t
    if step == MENU:
        await _show_menu(update, context)
        return
    if step == CLUSTER:
        async with context.session() as session:
            clusters = [c for cid in context.cda_cluster_ids if (c := await session.get(Cluster, cid))]
        await send(update, t("Which cluster?"), reply_markup=one_per_row((c.name, step_button(FLOW, CLUSTER, str(c.id))) for c in clusters))
        return
    if step in (MANAGE, NEW_TIME, MOVE, DROP):
        await _ask_manage(update, context, step, data)
        return
    cluster = await _cluster(context, data)
    if cluster is None:
        await _clear(context)
        await send(update, t(REFUSED))
        return
    local = _local(context, cluster)
    if step == TITLE:
        await send(update, t("What is the meeting called? Write a short title."), reply_markup=ReplyKeyboardRemove())
    elif step == WHEN:
        await send(update, _when_question(local, cluster, WHEN_QUESTION))
    elif step == VENUE:
        await send(update, t("Where will it be held? Write the place, for example: Association hall, Civil Lines."))
    elif step == LOCATION:
        keyboard = ReplyKeyboardMarkup(
            [[KeyboardButton(t("📍 Share location"), request_location=True)], [t("Skip")]],
            resize_keyboard=True, one_time_keyboard=True,
        )
        await send(update, t("You may share the place on the map, so people can find it: press “📍 Share location” or attach a location. Or press Skip."), reply_markup=keyboard)
    elif step == AGENDA:
        await send(update, t("What is the agenda? Write the points to discuss."), reply_markup=ReplyKeyboardRemove())
    elif step == AUDIENCE:
        async with context.session() as session:
            has_activities = bool(await svc.open_activities(session, cluster_id=cluster.id, limit=1))
        rows = [
            [(t("Everyone in the cluster"), step_button(FLOW, AUDIENCE, "all"))],
            [(t("One role"), step_button(FLOW, AUDIENCE, "role"))],
            [(t("One language"), step_button(FLOW, AUDIENCE, "language"))],
        ]
        if has_activities:
            rows.append([(t("The people of one activity"), step_button(FLOW, AUDIENCE, "activity"))])
        await send(update, t("Who should be invited?"), reply_markup=inline(rows))
    elif step == ROLE:
        await send(update, t("Which role?"), reply_markup=one_per_row((t(label), step_button(FLOW, ROLE, role)) for role, label in ROLE_LABELS.items()))
    elif step == LANGUAGE:
        await send(update, t("Which language?"), reply_markup=one_per_row((name, step_button(FLOW, LANGUAGE, code)) for code, name in LANGUAGES.items()))
    elif step in (ACTIVITY, LINK):
        async with context.session() as session:
            activities = await svc.open_activities(session, cluster_id=cluster.id)
        buttons = [(svc.activity_title(a, t.language, cluster.language)[:60], step_button(FLOW, step, str(a.id))) for a in activities]
        if step == LINK:
            buttons.append((t("No, it is not part of an activity"), step_button(FLOW, LINK, "none")))
            question = t("Is this meeting part of an activity of the action plan?")
        else:
            question = t("Which activity's people should be invited?")
        await send(update, question, reply_markup=one_per_row(buttons))
    elif step == CONFIRM:
        await _preview(update, context, cluster, data)


def _when_question(local: Translator, cluster: Cluster, msgid: str) -> str:
    return local(msgid).format(
        example=svc.example_time(cluster.timezone),
        zone=get_timezone_name(local.zone, locale=local.locale),
    )


# ---------------------------------------------------------------- typed answers and locations


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    if not context.is_cda:
        await _clear(context)
        await send(update, t(REFUSED))
        return
    data = dict(state.data)
    text = update.effective_message.text or ""
    step = state.step
    if step == NEW_TIME:
        await _typed_new_time(update, context, data, text)
        return
    if step not in (TITLE, WHEN, VENUE, LOCATION, AGENDA):
        await send(update, t("Please use the buttons below."))
        await _ask(update, context, step, data)
        return
    cluster = await _cluster(context, data)
    if cluster is None:
        await _ask(update, context, step, data)
        return
    try:
        if step == TITLE:
            data["title"], following = svc.parse_text(text, limit=svc.MAX_TITLE), WHEN
        elif step == WHEN:
            data["starts_at"], following = svc.parse_starts_at(text, timezone=cluster.timezone).isoformat(), VENUE
        elif step == VENUE:
            data["venue"], following = svc.parse_text(text, limit=svc.MAX_VENUE), LOCATION
        elif step == LOCATION:
            if not is_skip(t, text):
                await send(update, t("Please share a location with the button, or press Skip."))
                await _ask(update, context, step, data)
                return
            data["latitude"] = data["longitude"] = None
            following = AGENDA
        else:
            data["agenda"], following = svc.parse_text(text, limit=svc.MAX_AGENDA), AUDIENCE
    except svc.MeetingError as problem:
        await send(update, problem.render(t))
        await _ask(update, context, step, data)
        return
    await _save(context, following, data)
    await _ask(update, context, following, data)


async def on_location(update: Update, context: ClusterContext, state) -> None:
    if not context.is_cda or state.step != LOCATION:
        # A location where text is asked: answered like any other wrong kind of message.
        await on_text(update, context, state)
        return
    data = dict(state.data)
    location = update.effective_message.location
    data["latitude"], data["longitude"] = location.latitude, location.longitude
    await _save(context, AGENDA, data)
    await send(update, context.t("Location received"), reply_markup=ReplyKeyboardRemove())
    await _ask(update, context, AGENDA, data)


# ---------------------------------------------------------------- buttons of the dialog


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    if not context.is_cda:
        await _refuse_press(update, context, "/meeting")
        return
    button = StepButton.parse(query.data or "")
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=context._user_id)
    if button is None or state is None or state.flow != FLOW or state.step != button.step:
        await answer_stale(query, t)
        if state is not None and state.flow == FLOW:
            await _ask(update, context, state.step, dict(state.data))
        return
    data = dict(state.data)
    handler = BUTTON_STEPS.get(button.step)
    if handler is None:
        await answer_stale(query, t)
        return
    await handler(update, context, button, data)


async def _menu_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    t = context.t
    query = update.callback_query
    if value == "new":
        if not context.cda_cluster_ids:
            await _refuse_press(update, context, "/meeting")
            return
        await mark_answered(query, t("➕ Call a new meeting"))
        if len(context.cda_cluster_ids) > 1:
            await _save(context, CLUSTER, {})
            await _ask(update, context, CLUSTER, {})
            return
        data = {"cluster_id": context.cda_cluster_ids[0]}
        await _save(context, TITLE, data)
        await _ask(update, context, TITLE, data)
        return
    found = await _managed(context, int(value)) if value.isdigit() else None
    if found is None:
        await _refuse_press(update, context, f"meeting:{value}")
        return
    meeting, cluster = found
    await mark_answered(query, meeting.title)
    await send_tally(update, context, meeting, cluster, live=True)
    data = {"meeting_id": meeting.id}
    await _save(context, MANAGE, data)
    await _ask(update, context, MANAGE, data)


async def _cluster_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    data = {"cluster_id": int(value)} if value.isdigit() else {}
    cluster = await _cluster(context, data)
    if cluster is None:
        await _refuse_press(update, context, f"cluster:{value}")
        return
    await mark_answered(update.callback_query, cluster.name)
    await _save(context, TITLE, data)
    await _ask(update, context, TITLE, data)


async def _audience_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    t = context.t
    query = update.callback_query
    follow = {"role": ROLE, "language": LANGUAGE, "activity": ACTIVITY}
    labels = {"all": t("Everyone in the cluster"), "role": t("One role"), "language": t("One language"),
              "activity": t("The people of one activity")}
    if value not in labels:
        await answer_stale(query, t)
        return
    await mark_answered(query, labels[value])
    if value in follow:
        await _save(context, follow[value], data)
        await _ask(update, context, follow[value], data)
        return
    await _audience_chosen(update, context, data, svc.Audience("all"))


async def _role_or_language_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    t = context.t
    step = button.step
    if value not in (ROLE_LABELS if step == ROLE else LANGUAGES):
        await answer_stale(update.callback_query, t)
        return
    await mark_answered(update.callback_query, t(ROLE_LABELS[value]) if step == ROLE else LANGUAGES[value])
    await _audience_chosen(update, context, data, svc.Audience(step, value))


async def _activity_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    """An activity for the audience (step ACTIVITY) or the link (step LINK)."""
    value = button.value
    t = context.t
    query = update.callback_query
    step = button.step
    cluster = await _cluster(context, data)
    if cluster is None:
        await _refuse_press(update, context, "/meeting")
        return
    if step == LINK and value == "none":
        await mark_answered(query, t("No, it is not part of an activity"))
        data["activity_id"] = None
        await _save(context, CONFIRM, data)
        await _preview(update, context, cluster, data)
        return
    async with context.session() as session:
        activity = await svc.activity_of_cluster(session, activity_id=int(value), cluster_id=cluster.id) if value.isdigit() else None
    if activity is None:
        await _refuse_press(update, context, f"activity:{value}")
        return
    await mark_answered(query, svc.activity_title(activity, t.language, cluster.language))
    if step == ACTIVITY:
        # Inviting an activity's people makes the meeting part of that activity.
        data["activity_id"] = activity.id
        await _audience_chosen(update, context, data, svc.Audience("activity", activity.id))
        return
    data["activity_id"] = activity.id
    await _save(context, CONFIRM, data)
    await _preview(update, context, cluster, data)


async def _audience_chosen(update: Update, context: ClusterContext, data: dict, audience: svc.Audience) -> None:
    t = context.t
    cluster = await _cluster(context, data)
    if cluster is None:
        await send(update, t(REFUSED))
        return
    async with context.session() as session:
        members = await svc.audience_members(session, cluster_id=cluster.id, audience=audience)
        activities = await svc.open_activities(session, cluster_id=cluster.id, limit=1)
    if not members:
        await send(update, t("No one is in this audience yet. Please choose another."))
        await _save(context, AUDIENCE, data)
        await _ask(update, context, AUDIENCE, data)
        return
    data["audience"] = audience.as_dict()
    if audience.kind != "activity":
        data["activity_id"] = None
        if activities:
            await _save(context, LINK, data)
            await _ask(update, context, LINK, data)
            return
    await _save(context, CONFIRM, data)
    await _preview(update, context, cluster, data)


def _draft_meeting(cluster: Cluster, data: dict) -> Meeting:
    return Meeting(
        cluster_id=cluster.id, title=data["title"], starts_at=datetime.fromisoformat(data["starts_at"]),
        venue=data["venue"], latitude=data.get("latitude"), longitude=data.get("longitude"),
        agenda=data["agenda"], activity_id=data.get("activity_id"),
    )


async def _audience_label(context: ClusterContext, cluster: Cluster, audience: dict) -> str:
    t = context.t
    if audience["kind"] == "role":
        return t(ROLE_LABELS[audience["value"]])
    if audience["kind"] == "language":
        return LANGUAGES[audience["value"]]
    if audience["kind"] == "activity":
        async with context.session() as session:
            activity = await svc.activity_of_cluster(session, activity_id=int(audience["value"]), cluster_id=cluster.id)
        title = svc.activity_title(activity, t.language, cluster.language) if activity else "?"
        return t("The people of: {activity}").format(activity=title)
    return t("Everyone in the cluster")


async def _preview(update: Update, context: ClusterContext, cluster: Cluster, data: dict) -> None:
    t = context.t
    local = _local(context, cluster)
    async with context.session() as session:
        members = await svc.audience_members(session, cluster_id=cluster.id, audience=svc.Audience(**data["audience"]))
        activity = (
            await svc.activity_of_cluster(session, activity_id=data["activity_id"], cluster_id=cluster.id)
            if data.get("activity_id") else None
        )
    lines = [t("Please check the meeting notice before it is sent.")]
    if len(context.cda_cluster_ids) > 1:
        lines.append(t("Cluster: {name}").format(name=escape(cluster.name)))
    lines.append(t("To: {audience} ({count})").format(
        audience=escape(await _audience_label(context, cluster, data["audience"])),
        count=t.ngettext("{count} person", "{count} people", len(members)).format(count=t.number(len(members))),
    ))
    if activity is not None:
        lines.append(t("Activity: {title}").format(title=escape(svc.activity_title(activity, t.language, cluster.language))))
    lines += ["", t("Each person gets this notice in their own language, with Yes / No / Maybe buttons and a calendar file:")]
    notice = svc.notice_text(local, _draft_meeting(cluster, data))
    await send(
        update,
        "\n".join(lines) + "\n\n<blockquote>" + notice + "</blockquote>",
        reply_markup=inline([[(t("📤 Send"), step_button(FLOW, CONFIRM, "send")), (t("Cancel"), step_button(FLOW, CONFIRM, "cancel"))]]),
    )


async def _confirm_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    t = context.t
    query = update.callback_query
    if value != "send":
        await mark_answered(query, t("Cancel"))
        await _clear(context)
        await send(update, t("Cancelled. Nothing was sent."))
        return
    cluster = await _cluster(context, data)
    if cluster is None:
        await _refuse_press(update, context, "/meeting")
        return
    starts_at = datetime.fromisoformat(data["starts_at"])
    if starts_at <= utcnow():
        await query.answer()
        await send(update, t("That time has already passed. Please give a time in the future."))
        await _save(context, WHEN, data)
        await _ask(update, context, WHEN, data)
        return
    try:
        async with context.session() as session:
            meeting, count = await svc.create_meeting(
                session, cluster=cluster, title=data["title"], starts_at=starts_at, venue=data["venue"],
                agenda=data["agenda"], audience=svc.Audience(**data["audience"]), latitude=data.get("latitude"),
                longitude=data.get("longitude"), activity_id=data.get("activity_id"), created_by=context._user_id,
            )
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
    except svc.MeetingError as problem:
        await query.answer()
        await send(update, problem.render(t))
        await _save(context, AUDIENCE, data)
        await _ask(update, context, AUDIENCE, data)
        return
    await mark_answered(query, t("📤 Send"))
    _notify_sender(context)
    await send(update, t.ngettext(
        "The meeting is called. The notice is on its way to {count} person; answers appear below.",
        "The meeting is called. The notice is on its way to {count} people; answers appear below.",
        count,
    ).format(count=t.number(count)))
    await _send_calendar(update, context, meeting, cluster)
    await send_tally(update, context, meeting, cluster, live=True)


def _notify_sender(context: ClusterContext) -> None:
    sender = context.deps.extra.get("sender")
    if sender is not None:
        sender.notify()


# ---------------------------------------------------------------- managing an upcoming meeting


async def _ask_manage(update: Update, context: ClusterContext, step: str, data: dict) -> None:
    t = context.t
    found = await _managed(context, data.get("meeting_id"))
    if found is None:
        await _clear(context)
        await send(update, t(REFUSED))
        return
    meeting, cluster = found
    local = _local(context, cluster)
    if step == MANAGE:
        await send(update, t("What do you want to do with “{title}”?").format(title=escape(meeting.title)), reply_markup=one_per_row([
            (t("🕑 Move to another time"), step_button(FLOW, MANAGE, "move")),
            (t("❌ Cancel the meeting"), step_button(FLOW, MANAGE, "cancel")),
            (t("📅 Calendar file"), step_button(FLOW, MANAGE, "ics")),
        ]))
    elif step == NEW_TIME:
        await send(update, _when_question(local, cluster, NEW_TIME_QUESTION))
    elif step == MOVE:
        await send(update, t("Move “{title}” from {old} to {new}? Everyone invited will be told, and reminders follow the new time.").format(
            title=escape(meeting.title), old=svc.when_text(local, meeting.starts_at),
            new=svc.when_text(local, datetime.fromisoformat(data["starts_at"])),
        ), reply_markup=inline([[(t("Yes, move it"), step_button(FLOW, MOVE, "yes")), (t("No"), step_button(FLOW, MOVE, "no"))]]))
    elif step == DROP:
        await send(update, t("Cancel “{title}” on {when}? Everyone who was told about it will be told it is off.").format(
            title=escape(meeting.title), when=svc.when_text(local, meeting.starts_at),
        ), reply_markup=inline([[(t("Yes, cancel it"), step_button(FLOW, DROP, "yes")), (t("No, keep it"), step_button(FLOW, DROP, "no"))]]))


async def _manage_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    value = button.value
    t = context.t
    query = update.callback_query
    found = await _managed(context, data.get("meeting_id"))
    if found is None:
        await _refuse_press(update, context, f"meeting:{data.get('meeting_id')}")
        return
    meeting, cluster = found
    if value == "ics":
        await query.answer()
        await _send_calendar(update, context, meeting, cluster)
        return
    step = {"move": NEW_TIME, "cancel": DROP}.get(value)
    if step is None:
        await answer_stale(query, t)
        return
    await mark_answered(query, t("🕑 Move to another time") if step == NEW_TIME else t("❌ Cancel the meeting"))
    await _save(context, step, data)
    await _ask(update, context, step, data)


async def _typed_new_time(update: Update, context: ClusterContext, data: dict, text: str) -> None:
    found = await _managed(context, data.get("meeting_id"))
    if found is None:
        await _ask(update, context, NEW_TIME, data)
        return
    meeting, cluster = found
    try:
        starts_at = svc.parse_starts_at(text, timezone=cluster.timezone)
        if starts_at == as_utc(meeting.starts_at):
            raise svc.MeetingError(svc.SAME_TIME)
    except svc.MeetingError as problem:
        await send(update, problem.render(context.t))
        await _ask(update, context, NEW_TIME, data)
        return
    data["starts_at"] = starts_at.isoformat()
    await _save(context, MOVE, data)
    await _ask(update, context, MOVE, data)


async def _change_pressed(update: Update, context: ClusterContext, button: StepButton, data: dict) -> None:
    """Yes / No on moving (step MOVE) or cancelling (step DROP) the meeting."""
    value = button.value
    t = context.t
    query = update.callback_query
    step = button.step
    found = await _managed(context, data.get("meeting_id"))
    if found is None:
        await _refuse_press(update, context, f"meeting:{data.get('meeting_id')}")
        return
    meeting, cluster = found
    if value != "yes":
        await mark_answered(query, t("No"))
        await _clear(context)
        await send(update, t("Nothing was changed."))
        return
    try:
        async with context.session() as session:
            meeting = await session.get(Meeting, meeting.id)
            if step == MOVE:
                count = await svc.reschedule_meeting(
                    session, meeting=meeting, starts_at=datetime.fromisoformat(data["starts_at"]), actor_user_id=context._user_id
                )
            else:
                count = await svc.cancel_meeting(session, meeting=meeting, actor_user_id=context._user_id)
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
    except svc.MeetingError as problem:
        await query.answer()
        await _clear(context)
        await send(update, problem.render(t))
        return
    await mark_answered(query, t("Yes, move it") if step == MOVE else t("Yes, cancel it"))
    _notify_sender(context)
    done = (
        t.ngettext("The meeting is moved. {count} person will be told.", "The meeting is moved. {count} people will be told.", count)
        if step == MOVE
        else t.ngettext("The meeting is cancelled. {count} person will be told.", "The meeting is cancelled. {count} people will be told.", count)
    )
    await send(update, done.format(count=t.number(count)))
    await refresh_tally(context.bot, context.deps.sessionmaker, meeting.id)


BUTTON_STEPS = {
    MENU: _menu_pressed,
    CLUSTER: _cluster_pressed,
    AUDIENCE: _audience_pressed,
    ROLE: _role_or_language_pressed,
    LANGUAGE: _role_or_language_pressed,
    ACTIVITY: _activity_pressed,
    LINK: _activity_pressed,
    CONFIRM: _confirm_pressed,
    MANAGE: _manage_pressed,
    MOVE: _change_pressed,
    DROP: _change_pressed,
}


# ---------------------------------------------------------------- calendar files


async def _send_calendar(update: Update, context: ClusterContext, meeting: Meeting, cluster: Cluster, attendee: ics.Attendee | None = None) -> None:
    t = context.t
    content = ics.meeting_calendar(meeting, organizer=cluster.name, attendee=attendee)
    caption = (
        t("Open this file to remove the meeting from your calendar.")
        if meeting.status == svc.CANCELLED
        else t("Open this file to add the meeting to your calendar.")
    )
    await update.effective_chat.send_document(content, filename=ics.file_name(meeting), caption=caption)


async def on_calendar(update: Update, context: ClusterContext) -> None:
    """An invitee asks for the calendar file of their invite."""
    t = context.t
    query = update.callback_query
    invite_id = _int_part(query.data, 1)
    stakeholder = context.stakeholder
    try:
        async with context.session() as session:
            meeting, invite = await svc.own_invite(
                session, invite_id=invite_id or 0, stakeholder_id=stakeholder.id if stakeholder else None
            )
            cluster = await session.get(Cluster, meeting.cluster_id)
    except svc.MeetingError as problem:
        await query.answer(problem.render(t), show_alert=True)
        return
    await query.answer()
    attendee = ics.Attendee(stakeholder.name, f"tg://user?id={stakeholder.telegram_user_id}", invite.response)
    await _send_calendar(update, context, meeting, cluster, attendee)


# ---------------------------------------------------------------- RSVPs


async def on_rsvp(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    parts = (query.data or "").split(":")
    invite_id = _int_part(query.data, 1)
    response = svc.RESPONSE_CODES.get(parts[2]) if len(parts) == 3 else None
    if invite_id is None or response is None:
        await answer_stale(query, t)
        return
    stakeholder = context.stakeholder
    try:
        async with context.session() as session:
            meeting, invite = await svc.record_rsvp(
                session, invite_id=invite_id, stakeholder_id=stakeholder.id if stakeholder else None,
                response=response, actor_user_id=context._user_id,
            )
            cluster = await session.get(Cluster, meeting.cluster_id)
    except svc.MeetingError as problem:
        await query.answer(problem.render(t), show_alert=True)
        if problem.msgid in (svc.MEETING_CANCELLED, svc.MEETING_STARTED):
            await _drop_buttons(query)
        return
    await query.answer(t("Thank you! Your answer is saved: {answer}").format(answer=svc.response_label(t, response)))
    local = _local(context, cluster)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(
                svc.notice_text(local, meeting, response=response, answered=True),
                reply_markup=InlineKeyboardMarkup.de_json(svc.notice_markup(local, invite_id=invite.id), context.bot),
            )
        except BadRequest:
            # The same answer pressed twice leaves the message as it was.
            pass
    await _tallies(context).changed(context.bot, context.deps.sessionmaker, meeting.id)


async def _drop_buttons(query) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except BadRequest:
            pass


def _int_part(data: str | None, index: int) -> int | None:
    try:
        return int((data or "").split(":")[index])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------- the tally


def tally_text(t: Translator, meeting: Meeting, tally: dict[str, int], coming: list[str], now: datetime | None = None) -> str:
    """The answers to one meeting, as the CDA (or the activity's coordinator) sees them."""
    lines = [t("📊 <b>Answers: {title}</b>").format(title=escape(meeting.title)), svc.when_text(t, meeting.starts_at)]
    if meeting.status == svc.CANCELLED:
        lines.append(t("❌ This meeting was cancelled."))
    lines.append("")
    for response in ("yes", "maybe", "no"):
        lines.append(f"{t(svc.RESPONSE_LABELS[response])}: {t.number(tally[response])}")
    lines.append(t("⏳ No answer yet: {count}").format(count=t.number(tally["pending"])))
    lines.append(t("Invited: {count}").format(count=t.number(tally["invited"])))
    if coming:
        names = ", ".join(escape(name) for name in coming)
        more = tally["yes"] - len(coming)
        if more > 0:
            names += " " + t("and {count} more").format(count=t.number(more))
        lines += ["", t("Coming: {names}").format(names=names)]
    moment = now or utcnow()
    lines += ["", t("Updated at {time}").format(time=format_time(moment, "medium", tzinfo=t.zone, locale=t.locale))]
    return "\n".join(lines)


def tally_markup(t: Translator, meeting_id: int) -> InlineKeyboardMarkup:
    return inline([[(t("🔄 Refresh"), f"{svc.TALLY_PREFIX}:{meeting_id}")]])


async def _tally_parts(sessionmaker, meeting_id: int) -> tuple[Meeting, Cluster, dict[str, int], list[str]]:
    async with sessionmaker() as session:
        meeting = await session.get(Meeting, meeting_id)
        cluster = await session.get(Cluster, meeting.cluster_id)
        tally = await svc.rsvp_tally(session, meeting_id=meeting_id)
        coming = await svc.names_by_response(session, meeting_id=meeting_id, response="yes")
    return meeting, cluster, tally, coming


async def send_tally(update: Update, context: ClusterContext, meeting: Meeting, cluster: Cluster, *, live: bool) -> None:
    """Show the tally; ``live`` makes it the message that is edited as answers arrive."""
    meeting, cluster, tally, coming = await _tally_parts(context.deps.sessionmaker, meeting.id)
    local = _local(context, cluster)
    message = await send(update, tally_text(local, meeting, tally, coming), reply_markup=tally_markup(local, meeting.id))
    if live:
        async with context.session() as session:
            await svc.remember_tally_message(
                session, meeting_id=meeting.id, chat_id=message.chat_id, message_id=message.message_id, language=context.language
            )


async def refresh_tally(bot, sessionmaker, meeting_id: int) -> None:
    """Redraw the live tally message of a meeting, if there is one."""
    async with sessionmaker() as session:
        where = await svc.tally_message(session, meeting_id=meeting_id)
    if where is None:
        return
    chat_id, message_id, language = where
    meeting, cluster, tally, coming = await _tally_parts(sessionmaker, meeting_id)
    t = Translator(language, cluster.timezone)
    try:
        await bot.edit_message_text(
            tally_text(t, meeting, tally, coming), chat_id=chat_id, message_id=message_id, reply_markup=tally_markup(t, meeting_id)
        )
    except (BadRequest, Forbidden) as error:
        # Unchanged, deleted, or the CDA blocked the bot: the 🔄 button or /meeting redraws it.
        log.debug("Tally of meeting %s not edited: %s", meeting_id, error)


class TallyEditor:
    """Edits a meeting's live tally at most once per ``interval`` seconds; answers that arrive in
    between are shown by a single deferred edit."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}
        self._pending: set[int] = set()
        # The loop keeps only weak references to tasks; these keep deferred edits alive.
        self._tasks: set[asyncio.Task] = set()

    async def changed(self, bot, sessionmaker, meeting_id: int) -> None:
        if meeting_id in self._pending:
            return
        wait = self._last.get(meeting_id, float("-inf")) + self.interval - time.monotonic()
        if wait <= 0:
            self._last[meeting_id] = time.monotonic()
            await refresh_tally(bot, sessionmaker, meeting_id)
            return
        self._pending.add(meeting_id)
        task = asyncio.create_task(self._later(bot, sessionmaker, meeting_id, wait))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _later(self, bot, sessionmaker, meeting_id: int, wait: float) -> None:
        await asyncio.sleep(wait)
        # Cleared before reading the answers, so one given during the redraw schedules another.
        self._pending.discard(meeting_id)
        self._last[meeting_id] = time.monotonic()
        try:
            await refresh_tally(bot, sessionmaker, meeting_id)
        except Exception:  # a tally is a convenience; the 🔄 button redraws it
            log.exception("Tally of meeting %s not redrawn", meeting_id)

    async def settle(self) -> None:
        """Wait for the deferred edits (tests use it)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _tallies(context: ClusterContext) -> TallyEditor:
    return context.deps.extra.setdefault("meeting_tallies", TallyEditor(TALLY_INTERVAL))


async def on_tally(update: Update, context: ClusterContext) -> None:
    """🔄 on a tally: the CDA of the cluster, or the coordinator of the meeting's activity."""
    query = update.callback_query
    meeting_id = _int_part(query.data, 1)
    async with context.session() as session:
        meeting = await session.get(Meeting, meeting_id) if meeting_id is not None else None
    allowed = svc.may_view(
        meeting, cda_cluster_ids=context.cda_cluster_ids, coordinated_activity_ids=context.coordinated_activity_ids
    )
    if not allowed:
        await _refuse_press(update, context, f"meeting:{meeting_id}")
        return
    await query.answer()
    meeting, cluster, tally, coming = await _tally_parts(context.deps.sessionmaker, meeting.id)
    local = _local(context, cluster)
    try:
        await query.edit_message_text(tally_text(local, meeting, tally, coming), reply_markup=tally_markup(local, meeting.id))
    except BadRequest:
        pass
    if svc.may_manage(meeting, cda_cluster_ids=context.cda_cluster_ids) and isinstance(query.message, Message):
        async with context.session() as session:
            await svc.remember_tally_message(
                session, meeting_id=meeting.id, chat_id=query.message.chat_id, message_id=query.message.message_id,
                language=context.language,
            )


HANDLERS = [
    CommandHandler("meeting", meeting_command, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
    CallbackQueryHandler(on_rsvp, pattern=rf"^{svc.RSVP_PREFIX}:"),
    CallbackQueryHandler(on_calendar, pattern=rf"^{svc.CALENDAR_PREFIX}:"),
    CallbackQueryHandler(on_tally, pattern=rf"^{svc.TALLY_PREFIX}:"),
]
