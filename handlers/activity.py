"""/activity (CDA: create, edit, cancel, announce, import, hand over; a coordinator: notices,
RSVPs and reports of their activity) and /activities (everyone: what is coming up).

The dialog is a dialog_state row (flow "act"); every button carries its step and is checked
against the stored step, and every action checks again, on the server, that this user may do it
to this cluster or activity.
"""

from __future__ import annotations

import functools
import secrets
from datetime import date
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import activities, audit, outbox
from bot.services import reports as report_service
from bot.services.activities import (
    CATEGORY_LABELS,
    PERSON_ROLE_LABELS,
    RSVP_LABELS,
    STATUS_LABELS,
    ActivityProblem,
)
from bot.services.activity_import import MAX_BYTES, import_activities
from bot.services.fields import ROLE_LABELS
from bot.services.stakeholders import coordinated_activities
from bot.services.surveys import service as surveys
from handlers.cda import refuse
from handlers.common import (
    answer_stale,
    clear_flow,
    inline,
    load_flow,
    mark_answered,
    save_step,
    send,
)
from handlers.menus import set_chat_menu
from models import Activity, Cluster, Stakeholder
from models.action_plan import ActivityRole, ActivityStatus
from models.base import as_utc, utcnow

FLOW = "act"
PER_PAGE = 8
MEMBERS_PER_PAGE = 8

FIELD_LABELS: dict[str, str] = {
    "year": N_("Year"),
    "title": N_("Title"),
    "category": N_("Category"),
    "description": N_("Description"),
    "start_date": N_("Start date"),
    "due_date": N_("Due date"),
    "venue": N_("Venue"),
    "target": N_("Target"),
}
FIELD_PROMPTS: dict[str, str] = {
    "year": N_("Which year's action plan is this activity part of? Press a button or type the year."),
    "title": N_("What is the activity called? Write its title in your language."),
    "category": N_("What kind of activity is it?"),
    "description": N_("Describe the activity in a few sentences."),
    "start_date": N_("When does it start? Type the date as day/month/year."),
    "due_date": N_("By when should it be done? Type the date as day/month/year."),
    "venue": N_("Where will it take place?"),
    "target": N_("What is the target? For example: 20 firms trained."),
}
PICKER_PROMPTS: dict[str, str] = {
    "leads": N_("Who leads this activity? Press names to choose them, then Done. To find someone, type part of their name."),
    "participants": N_("Who takes part? Press names to choose them, then Done. To find someone, type part of their name."),
    "coordinator": N_("Whom do you hand this activity over to? Press a name. To find someone, type part of their name."),
}
PEOPLE_LABELS: dict[str, str] = {
    ActivityRole.LEAD: N_("Leads"),
    ActivityRole.PARTICIPANT: N_("Participants"),
    ActivityRole.COORDINATOR: N_("Coordinator"),
}
NEW_ORDER = ("year", "title", "category", "description", "start_date", "due_date", "venue", "target", "leads", "participants")
OPTIONAL = ("description", "start_date", "due_date", "venue", "target")
TYPED = ("year", "title", "description", "start_date", "due_date", "venue", "target")
PICKERS = ("leads", "participants", "coordinator")
# What a coordinator may do with the activity handed to them; everything else is the CDA's.
COORDINATOR_ACTIONS = frozenset({"open", "notice", "notice_confirm", "rsvp", "reports", "back"})


# ---------------------------------------------------------------- state and permissions


_state = load_flow


_save = functools.partial(save_step, flow=FLOW)


_clear = clear_flow


async def _allowed_activity(context: ClusterContext, activity_id: Any, action: str) -> Activity | None:
    """The activity, if this user may do ``action`` to it: a CDA of its cluster anything, its
    coordinator only what a coordinator may do."""
    try:
        activity_id = int(activity_id)
    except (TypeError, ValueError):
        return None
    async with context.session() as session:
        activity = await session.get(Activity, activity_id)
    if activity is None:
        return None
    if activity.cluster_id in context.cda_cluster_ids:
        return activity
    if action in COORDINATOR_ACTIONS and activity.id in context.coordinated_activity_ids:
        return activity
    return None


async def _refused(update: Update, context: ClusterContext, action: str, subject: str) -> None:
    async with context.session() as session:
        audit.record(
            session, actor_user_id=context._user_id, action="refused", subject=subject[:64], detail={"action": action}
        )
        await session.commit()
    message = context.t("Sorry, you cannot do that for this activity.")
    if update.callback_query is not None:
        await update.callback_query.answer(message, show_alert=True)
    else:
        await send(update, message)


def _is_cda_of(context: ClusterContext, cluster_id: Any) -> bool:
    return isinstance(cluster_id, int) and cluster_id in context.cda_cluster_ids


async def _cluster(context: ClusterContext, cluster_id: int) -> Cluster:
    async with context.session() as session:
        return await session.get(Cluster, cluster_id)


def _sender(context: ClusterContext) -> None:
    sender = context.deps.extra.get("sender")
    if sender is not None:
        sender.notify()


# ---------------------------------------------------------------- texts


def _title(t: Translator, activity: Activity, cluster: Cluster) -> str:
    return activities.title_of(activity, t.language, cluster.language)


def _member_label(member: Stakeholder) -> str:
    return f"{member.name} ({member.enterprise})" if member.enterprise else member.name


def _today(context: ClusterContext, cluster: Cluster | None = None) -> date:
    zone = ZoneInfo(cluster.timezone) if cluster else context.t.zone
    return utcnow().astimezone(zone).date()


def _field_value(t: Translator, activity_or_draft: dict[str, Any], key: str) -> str:
    value = activity_or_draft.get(key)
    if value in (None, "", {}):
        return t("not given")
    if key == "category":
        return escape(t(CATEGORY_LABELS.get(value, N_("Other"))))
    if key in ("start_date", "due_date"):
        return t.date(date.fromisoformat(value) if isinstance(value, str) else value, "medium")
    if key in ("title", "description"):
        return escape(activities.text_in(value, t.language, t.language))
    if key == "year":
        return str(value)
    return escape(str(value))


def _activity_values(activity: Activity) -> dict[str, Any]:
    return {key: getattr(activity, key) for key in FIELD_LABELS}


# ---------------------------------------------------------------- /activity: entry and lists


async def activity_command(update: Update, context: ClusterContext) -> None:
    t = context.t
    if context.is_cda:
        ids = context.cda_cluster_ids
        if not ids:
            await send(update, t("There is no cluster for you yet. The operator creates one with: cluster-bot cluster create NAME"))
            return
        if len(ids) == 1:
            await _show_list(update, context, ids[0])
            return
        await _ask_cluster(update, context)
        return
    if context.is_coordinator:
        await _show_coordinated(update, context)
        return
    await refuse(update, context, "activity")


async def _ask_cluster(update: Update, context: ClusterContext) -> None:
    async with context.session() as session:
        clusters = [c for cid in context.cda_cluster_ids if (c := await session.get(Cluster, cid)) is not None]
    await _save(context, "cluster", {})
    await send(update, context.t("Which cluster?"), reply_markup=inline(
        [(cluster.name, step_button(FLOW, "cluster", str(cluster.id)))] for cluster in clusters
    ))


async def _show_list(update: Update, context: ClusterContext, cluster_id: int, page: int = 0, *, edit: Message | None = None) -> None:
    t = context.t
    async with context.session() as session:
        cluster = await session.get(Cluster, cluster_id)
        found = await activities.list_activities(session, cluster_id=cluster_id)
    pages = max(1, -(-len(found) // PER_PAGE))
    page = min(max(page, 0), pages - 1)
    await _save(context, "list", {"cluster_id": cluster_id, "page": page})
    lines = [t("<b>Action plan: {cluster}</b>").format(cluster=escape(cluster.name))]
    if not found:
        lines.append(t("No activities yet. Add one, or send a CSV or Excel file with the plan."))
    rows = []
    for activity in found[page * PER_PAGE : (page + 1) * PER_PAGE]:
        label = f"{_title(t, activity, cluster)} · {t(STATUS_LABELS.get(activity.status, activity.status))}"
        rows.append([(label[:60], step_button(FLOW, "list", f"o{activity.id}"))])
    if pages > 1:
        lines.append(t("Page {page} of {pages}").format(page=t.number(page + 1), pages=t.number(pages)))
        navigation = []
        if page > 0:
            navigation.append(("◀", step_button(FLOW, "list", f"pg{page - 1}")))
        if page + 1 < pages:
            navigation.append(("▶", step_button(FLOW, "list", f"pg{page + 1}")))
        rows.append(navigation)
    rows.append([(t("➕ New activity"), step_button(FLOW, "list", "new"))])
    rows.append([(t("📥 Import from a file"), step_button(FLOW, "list", "import"))])
    text, markup = "\n".join(lines), inline(rows)
    if edit is not None:
        try:
            await edit.edit_text(text, reply_markup=markup)
            return
        except BadRequest:
            pass
    await send(update, text, reply_markup=markup)


async def _show_coordinated(update: Update, context: ClusterContext) -> None:
    t = context.t
    async with context.session() as session:
        found = await activities.activities_by_id(session, ids=context.coordinated_activity_ids)
        clusters = {a.cluster_id: await session.get(Cluster, a.cluster_id) for a in found}
    if len(found) == 1:
        await _show_card(update, context, found[0])
        return
    await _save(context, "list", {"coord": True})
    rows = [[(_title(t, a, clusters[a.cluster_id])[:60], step_button(FLOW, "list", f"o{a.id}"))] for a in found]
    await send(update, t("The activities handed over to you:"), reply_markup=inline(rows))


async def _show_card(update: Update, context: ClusterContext, activity: Activity, *, note: str | None = None) -> None:
    t = context.t
    as_cda = activity.cluster_id in context.cda_cluster_ids
    async with context.session() as session:
        cluster = await session.get(Cluster, activity.cluster_id)
        on_it = await activities.people(session, activity_id=activity.id)
        reports = await report_service.submitted_count(session, activity_id=activity.id)
    data = {"activity_id": activity.id}
    data.update({"cluster_id": activity.cluster_id} if as_cda else {"coord": True})
    await _save(context, "card", data)
    by_role: dict[str, list[str]] = {}
    for role, person in on_it:
        by_role.setdefault(role, []).append(person.name)
    lines = []
    if note:
        lines += [note, ""]
    lines.append(f"<b>{escape(_title(t, activity, cluster))}</b>")
    others = [f"{LANGUAGES.get(code, code)}: {escape(text)}" for code, text in activity.title.items() if code != t.language]
    if others:
        lines.append("<i>" + " · ".join(others) + "</i>")
    lines.append(t("Year: {year} · Status: {status}").format(
        year=activity.year, status=escape(t(STATUS_LABELS.get(activity.status, activity.status)))
    ))
    lines += activities.details_lines(t, activity, cluster.language)
    lines.append("")
    for role in (ActivityRole.LEAD, ActivityRole.PARTICIPANT, ActivityRole.COORDINATOR):
        names = by_role.get(role, [])
        shown = ", ".join(escape(name) for name in names[:10]) + (" …" if len(names) > 10 else "")
        label = t(PEOPLE_LABELS[role])
        lines.append(f"{escape(label)} ({t.number(len(names))}): {shown or t('nobody yet')}")
    lines.append(t.ngettext("{count} report received", "{count} reports received", reports).format(count=t.number(reports)))

    def button(label: str, action: str) -> tuple[str, str]:
        return (label, step_button(FLOW, "card", action))

    if as_cda:
        rows = [
            [button(t("✏️ Edit"), "edit"), button(t("🔄 Status"), "status")],
            [button(t("👥 Leads"), "leads"), button(t("👥 Participants"), "participants")],
            [button(t("🧭 Hand over"), "coordinator"), button(t("📢 Announce"), "announce")],
            [button(t("✉️ Notice"), "notice"), button(t("🗳 RSVPs"), "rsvp"), button(t("📝 Reports"), "reports")],
        ]
        if activity.status != ActivityStatus.CANCELLED:
            rows.append([button(t("❌ Cancel the activity"), "cancel")])
    else:
        rows = [
            [button(t("✉️ Notice to participants"), "notice")],
            [button(t("🗳 RSVPs"), "rsvp"), button(t("📝 Reports"), "reports")],
        ]
    rows.append([button(t("◀ Back"), "back")])
    await send(update, "\n".join(lines), reply_markup=inline(rows))


# ---------------------------------------------------------------- asking a step


async def _ask(update: Update, context: ClusterContext, step: str, data: dict[str, Any], *, warning: str | None = None) -> None:
    """Save the step and ask its question; also used to show the current step again."""
    await _save(context, step, data)
    text, rows = await _question(context, step, data)
    if warning:
        text = f"⚠️ {warning}\n\n{text}"
    await send(update, text, reply_markup=inline(rows) if rows else None)


async def _question(context: ClusterContext, step: str, data: dict[str, Any]) -> tuple[str, list]:
    t = context.t
    editing = data.get("mode") == "edit"
    back = [(t("◀ Back"), step_button(FLOW, step, "back"))]
    if step in FIELD_PROMPTS:
        rows: list = []
        text = t(FIELD_PROMPTS[step])
        if step == "title" and data.get("lang"):
            text = t("Write the title in {language}.").format(language=LANGUAGES[data["lang"]])
        if editing:
            current = await _current_values(context, data)
            value = current.get(step)
            if step == "title" and data.get("lang"):
                value = {data["lang"]: (value or {}).get(data["lang"])} if (value or {}).get(data["lang"]) else None
            text += "\n" + t("Now: {value}").format(value=_field_value(t, {step: value}, step))
        if step == "year":
            this_year = _today(context).year
            rows.append([(str(y), step_button(FLOW, step, str(y))) for y in (this_year, this_year + 1)])
        if step == "category":
            buttons = [(t(label), step_button(FLOW, step, code)) for code, label in CATEGORY_LABELS.items()]
            rows += [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        if step in OPTIONAL:
            rows.append([(t("✖ Remove") if editing else t("Skip"), step_button(FLOW, step, "skip"))])
        if editing:
            rows.append(back)
        return text, rows
    if step in PICKERS:
        return await _picker(context, step, data)
    if step == "edit":
        buttons = [(t(label), step_button(FLOW, step, key)) for key, label in FIELD_LABELS.items()]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([(t("🌐 Title in another language"), step_button(FLOW, step, "tlang"))])
        rows.append(back)
        return t("What do you want to change?"), rows
    if step == "title_lang":
        buttons = [(name, step_button(FLOW, step, code)) for code, name in LANGUAGES.items()]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append(back)
        return t("In which language do you want to add or change the title?"), rows
    if step == "status":
        rows = [[(t(label), step_button(FLOW, step, code))] for code, label in STATUS_LABELS.items()]
        rows.append(back)
        return t("What is the status of this activity now?"), rows
    if step == "audience":
        rows = [
            [(t("Everyone in the cluster"), step_button(FLOW, step, "all"))],
            [(t("One role"), step_button(FLOW, step, "role"))],
            [(t("One language"), step_button(FLOW, step, "language"))],
            [(t("The people on this activity"), step_button(FLOW, step, "participants"))],
            back,
        ]
        return t("Whom do you want to tell about this activity?"), rows
    if step == "aud_role":
        rows = [[(t(label), step_button(FLOW, step, role))] for role, label in ROLE_LABELS.items()]
        return t("Which role?"), [*rows, back]
    if step == "aud_lang":
        rows = [[(name, step_button(FLOW, step, code))] for code, name in LANGUAGES.items()]
        return t("Which language?"), [*rows, back]
    if step == "notice":
        return t("Write the notice for the people on this activity. They get it as you write it."), [back]
    if step == "import":
        columns = "year, title, category, description, start_date, due_date, venue, target, leads, participants, status"
        text = t(
            "Send the action plan as a CSV or Excel (.xlsx) file, one activity per row. "
            "The first row names the columns:\n<code>{columns}</code>\n"
            "Dates as day/month/year. Leads and participants: names or phone numbers of members, separated by “;”. "
            "Add a title in another language with a column such as <code>title::hi</code>. "
            "If any row has a problem, nothing is imported and you get the list of rows to fix."
        ).format(columns=columns)
        return text, [back]
    if step == "cancel_confirm":
        return t("Cancel this activity? The people on it are not told unless you announce it."), [
            [(t("Yes, cancel it"), step_button(FLOW, step, "yes")), (t("No"), step_button(FLOW, step, "no"))]
        ]
    if step in ("confirm", "ann_confirm", "notice_confirm"):
        return await _preview(context, step, data)
    return t("Please use the buttons below."), []


async def _current_values(context: ClusterContext, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("mode") == "edit":
        async with context.session() as session:
            activity = await session.get(Activity, data.get("activity_id"))
        return _activity_values(activity) if activity else {}
    return data.get("draft", {})


async def _picker(context: ClusterContext, step: str, data: dict[str, Any]) -> tuple[str, list]:
    t = context.t
    picked = list(data.get("picked", []))
    search = data.get("search") or None
    page = int(data.get("page", 0))
    async with context.session() as session:
        members, total = await surveys.cluster_members(
            session, cluster_id=data["cluster_id"], exclude=None, search=search,
            offset=page * MEMBERS_PER_PAGE, limit=MEMBERS_PER_PAGE,
        )
    pages = max(1, -(-total // MEMBERS_PER_PAGE))
    rows: list = []
    for member in members:
        mark = ("✅ " if member.id in picked else "▫️ ")
        rows.append([(mark + _member_label(member)[:50], step_button(FLOW, step, f"p{member.id}"))])
    navigation = []
    if page > 0:
        navigation.append(("◀", step_button(FLOW, step, f"pg{page - 1}")))
    if page + 1 < pages:
        navigation.append(("▶", step_button(FLOW, step, f"pg{page + 1}")))
    if navigation:
        rows.append(navigation)
    if search:
        rows.append([(t("✖ Clear the search"), step_button(FLOW, step, "all"))])
    if step == "coordinator":
        rows.append([(t("✖ No coordinator"), step_button(FLOW, step, "none")), (t("◀ Back"), step_button(FLOW, step, "back"))])
    else:
        rows.append([(t("Done ✔"), step_button(FLOW, step, "done"))])
    lines = [t(PICKER_PROMPTS[step])]
    if search:
        lines.append(t("Search: {text}").format(text=escape(search)))
    if step != "coordinator":
        lines.append(t.ngettext("{count} chosen", "{count} chosen", len(picked)).format(count=t.number(len(picked))))
    return "\n".join(lines), rows


async def _preview(context: ClusterContext, step: str, data: dict[str, Any]) -> tuple[str, list]:
    t = context.t
    send_row = [(t("📤 Send"), step_button(FLOW, step, "send")), (t("Cancel"), step_button(FLOW, step, "cancel"))]
    if step == "confirm":
        draft = data.get("draft", {})
        lines = [t("Please check the new activity:"), ""]
        for key, label in FIELD_LABELS.items():
            lines.append(f"<b>{escape(t(label))}:</b> {_field_value(t, draft, key)}")
        lines.append(f"<b>{escape(t(PEOPLE_LABELS['lead']))}:</b> {t.number(len(draft.get('leads', [])))}")
        lines.append(f"<b>{escape(t(PEOPLE_LABELS['participant']))}:</b> {t.number(len(draft.get('participants', [])))}")
        return "\n".join(lines), [[(t("✅ Save"), step_button(FLOW, step, "save")), (t("✖ Discard"), step_button(FLOW, step, "discard"))]]
    async with context.session() as session:
        activity = await session.get(Activity, data["activity_id"])
        cluster = await session.get(Cluster, activity.cluster_id)
        if step == "ann_confirm":
            audience = data["audience"]
            members = await activities.audience_members(session, activity=activity, kind=audience["kind"], value=audience.get("value"))
        else:
            members = await activities.audience_members(session, activity=activity, kind="participants")
            members = [m for m in members if context.stakeholder is None or m.id != context.stakeholder.id]
    count = t.ngettext("{count} person", "{count} people", len(members)).format(count=t.number(len(members)))
    if step == "ann_confirm":
        sample = activities.announcement_text(t, activity, cluster.language)
    else:
        sample = activities.notice_text(t, activity, cluster.language, sender=data.get("sender", ""), text=data.get("notice", ""))
    text = (
        t("To: {audience}").format(audience=count) + "\n"
        + t("Each person gets this message in their own language:") + "\n\n<blockquote>" + sample + "</blockquote>"
    )
    return text, [send_row]


# ---------------------------------------------------------------- buttons


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    if not (context.is_cda or context.is_coordinator):
        await _refused(update, context, "button", "/activity")
        return
    button = StepButton.parse(query.data or "")
    state = await _state(context)
    if button is None or state is None or state.flow != FLOW or state.step != button.step:
        await answer_stale(query, t)
        if state is not None and state.flow == FLOW:
            await _reshow(update, context, state.step, dict(state.data))
        return
    data = dict(state.data)
    step, value = button.step, button.value
    # The cluster or activity this step acts on comes from the stored state; check it again now.
    if step == "cluster":
        await _on_cluster(update, context, query, value)
        return
    if step == "list" and data.get("coord"):
        await _open(update, context, query, value[1:] if value.startswith("o") else None)
        return
    if "activity_id" in data:
        action = value if step == "card" else step
        activity = await _allowed_activity(context, data["activity_id"], action)
        if activity is None:
            await _refused(update, context, action, f"activity:{data['activity_id']}")
            return
    elif not _is_cda_of(context, data.get("cluster_id")):
        await _refused(update, context, step, f"cluster:{data.get('cluster_id')}")
        return
    else:
        activity = None
    handler = BUTTON_STEPS.get(step)
    if handler is None and step in FIELD_PROMPTS:
        handler = _on_field_button
    if handler is None:
        await answer_stale(query, t)
        return
    await handler(update, context, query, step, value, data, activity)


async def _reshow(update: Update, context: ClusterContext, step: str, data: dict[str, Any]) -> None:
    if step == "list":
        if data.get("coord"):
            await _show_coordinated(update, context)
        elif _is_cda_of(context, data.get("cluster_id")):
            await _show_list(update, context, data["cluster_id"], data.get("page", 0))
        return
    if step == "card":
        activity = await _allowed_activity(context, data.get("activity_id"), "open")
        if activity is not None:
            await _show_card(update, context, activity)
        return
    if step == "cluster":
        if context.is_cda:
            await _ask_cluster(update, context)
        return
    await _ask(update, context, step, data)


async def _on_cluster(update: Update, context: ClusterContext, query: CallbackQuery, value: str) -> None:
    cluster_id = int(value) if value.isdigit() else None
    if not _is_cda_of(context, cluster_id):
        await _refused(update, context, "cluster", f"cluster:{value}")
        return
    cluster = await _cluster(context, cluster_id)
    await mark_answered(query, cluster.name)
    await _show_list(update, context, cluster_id)


async def _open(update: Update, context: ClusterContext, query: CallbackQuery, activity_id: str | None) -> None:
    activity = await _allowed_activity(context, activity_id, "open")
    if activity is None:
        await _refused(update, context, "open", f"activity:{activity_id}")
        return
    await query.answer()
    await _drop_buttons(query)
    await _show_card(update, context, activity)


async def _drop_buttons(query: CallbackQuery) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except BadRequest:
            pass


async def _on_list(update, context, query, step, value, data, activity) -> None:
    t = context.t
    cluster_id = data["cluster_id"]
    if value.startswith("o"):
        await _open(update, context, query, value[1:])
    elif value.startswith("pg") and value[2:].isdigit():
        await query.answer()
        await _show_list(update, context, cluster_id, int(value[2:]), edit=query.message if isinstance(query.message, Message) else None)
    elif value == "new":
        await mark_answered(query, t("➕ New activity"))
        await _ask(update, context, "year", {"cluster_id": cluster_id, "mode": "new", "draft": {}})
    elif value == "import":
        await mark_answered(query, t("📥 Import from a file"))
        await _ask(update, context, "import", {"cluster_id": cluster_id})
    else:
        await answer_stale(query, t)


async def _on_card(update, context, query, step, value, data, activity: Activity) -> None:
    t = context.t
    base = {"activity_id": activity.id, "cluster_id": activity.cluster_id}
    if value == "back":
        await query.answer()
        await _drop_buttons(query)
        if activity.cluster_id in context.cda_cluster_ids:
            await _show_list(update, context, activity.cluster_id)
        else:
            await _clear(context)
            await _show_coordinated_or_done(update, context)
        return
    labels = {
        "edit": t("✏️ Edit"), "status": t("🔄 Status"), "leads": t("👥 Leads"), "participants": t("👥 Participants"),
        "coordinator": t("🧭 Hand over"), "announce": t("📢 Announce"), "notice": t("✉️ Notice"),
        "rsvp": t("🗳 RSVPs"), "reports": t("📝 Reports"), "cancel": t("❌ Cancel the activity"),
    }
    if value not in labels:
        await answer_stale(query, t)
        return
    await mark_answered(query, labels[value])
    if value == "edit":
        await _ask(update, context, "edit", {**base, "mode": "edit"})
    elif value == "status":
        await _ask(update, context, "status", base)
    elif value in ("leads", "participants"):
        role = ActivityRole.LEAD if value == "leads" else ActivityRole.PARTICIPANT
        async with context.session() as session:
            picked = await activities.people_ids(session, activity_id=activity.id, role=role)
        await _ask(update, context, value, {**base, "mode": "edit", "picked": picked, "page": 0})
    elif value == "coordinator":
        async with context.session() as session:
            picked = await activities.people_ids(session, activity_id=activity.id, role=ActivityRole.COORDINATOR)
        await _ask(update, context, "coordinator", {**base, "picked": picked, "page": 0})
    elif value == "announce":
        await _ask(update, context, "audience", base)
    elif value == "notice":
        await _ask(update, context, "notice", {"activity_id": activity.id, **({"cluster_id": activity.cluster_id} if activity.cluster_id in context.cda_cluster_ids else {"coord": True})})
    elif value == "rsvp":
        await _send_rsvps(update, context, activity)
        await _show_card(update, context, activity)
    elif value == "reports":
        await _send_reports(update, context, activity)
        await _show_card(update, context, activity)
    elif value == "cancel":
        await _ask(update, context, "cancel_confirm", base)


async def _show_coordinated_or_done(update: Update, context: ClusterContext) -> None:
    if len(context.coordinated_activity_ids) > 1:
        await _show_coordinated(update, context)
    else:
        await send(update, context.t("Done. Send /activity to open it again."))


async def _on_field_button(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "back" and data.get("mode") == "edit":
        await query.answer()
        await _drop_buttons(query)
        await _back_to_card(update, context, data)
        return
    if value == "skip" and step in OPTIONAL:
        await mark_answered(query, t("✖ Remove") if data.get("mode") == "edit" else t("Skip"))
        await _field_answered(update, context, step, None, data)
        return
    if step == "year" and value.isdigit():
        await mark_answered(query, value)
        await _field_answered(update, context, step, int(value), data)
        return
    if step == "category" and value in CATEGORY_LABELS:
        await mark_answered(query, t(CATEGORY_LABELS[value]))
        await _field_answered(update, context, step, value, data)
        return
    await answer_stale(query, t)
    await _ask(update, context, step, data)


async def _back_to_card(update: Update, context: ClusterContext, data: dict[str, Any], note: str | None = None) -> None:
    activity = await _allowed_activity(context, data.get("activity_id"), "open")
    if activity is None:
        await _clear(context)
        await send(update, context.t("Sorry, you cannot do that for this activity."))
        return
    await _show_card(update, context, activity, note=note)


def _parse_field(step: str, raw: str) -> Any:
    if step == "year":
        return activities.parse_year(raw)
    if step == "title":
        return activities.clean_text(raw, limit=activities.MAX_TITLE)
    if step == "description":
        return activities.clean_text(raw, limit=activities.MAX_DESCRIPTION, multiline=True)
    if step in ("start_date", "due_date"):
        return activities.parse_day(raw)
    return activities.clean_text(raw, limit=activities.MAX_SHORT)


async def _field_answered(update: Update, context: ClusterContext, step: str, value: Any, data: dict[str, Any]) -> None:
    """Store one answer: into the draft of a new activity, or straight onto the activity."""
    t = context.t
    language = data.get("lang") or t.language
    if data.get("mode") == "edit":
        activity = await _allowed_activity(context, data.get("activity_id"), step)
        if activity is None:
            await _refused(update, context, step, f"activity:{data.get('activity_id')}")
            return
        if step in ("title", "description"):
            texts = dict(getattr(activity, step) or {})
            if value is None:
                texts.pop(language, None)
            else:
                texts[language] = value
            value = texts
        try:
            async with context.session() as session:
                fresh = await session.get(Activity, activity.id)
                await activities.update_activity(session, activity=fresh, changes={step: value}, actor_user_id=context._user_id)
        except ActivityProblem as problem:
            await _ask(update, context, step, data, warning=problem.text(t))
            return
        await _show_card(update, context, fresh, note=t("✅ Saved."))
        return
    draft = dict(data.get("draft", {}))
    if step in ("title", "description"):
        value = {language: value} if value else None
    elif isinstance(value, date):
        value = value.isoformat()
    candidate = {**draft, step: value}
    if step in ("start_date", "due_date"):
        try:
            activities.check_dates(
                date.fromisoformat(candidate["start_date"]) if candidate.get("start_date") else None,
                date.fromisoformat(candidate["due_date"]) if candidate.get("due_date") else None,
            )
        except ActivityProblem as problem:
            await _ask(update, context, step, data, warning=problem.text(t))
            return
    data = {**data, "draft": candidate}
    following = NEW_ORDER[NEW_ORDER.index(step) + 1] if step in NEW_ORDER[:-1] else "confirm"
    if following in PICKERS:
        data.update({"picked": [], "page": 0, "search": None})
    await _ask(update, context, following, data)


async def _on_picker(update, context, query, step, value, data, activity) -> None:
    t = context.t
    picked = list(data.get("picked", []))
    if value.startswith("pg") and value[2:].isdigit():
        await query.answer()
        await _refresh_picker(context, query, step, {**data, "page": int(value[2:])})
        return
    if value == "all":
        await query.answer()
        await _refresh_picker(context, query, step, {**data, "page": 0, "search": None})
        return
    if value.startswith("p") and value[1:].isdigit():
        member_id = int(value[1:])
        async with context.session() as session:
            member = await session.get(Stakeholder, member_id)
            belongs = member is not None and await activities.is_member(session, stakeholder_id=member_id, cluster_id=data["cluster_id"])
        if not belongs:
            await _refused(update, context, step, f"stakeholder:{member_id}")
            return
        if step == "coordinator":
            await mark_answered(query, member.name)
            await _hand_over(update, context, activity, member)
            return
        await query.answer()
        picked = [m for m in picked if m != member_id] if member_id in picked else [*picked, member_id]
        await _refresh_picker(context, query, step, {**data, "picked": picked})
        return
    if step == "coordinator" and value == "back":
        await query.answer()
        await _drop_buttons(query)
        await _show_card(update, context, activity)
        return
    if step == "coordinator" and value == "none":
        await mark_answered(query, t("✖ No coordinator"))
        await _hand_over(update, context, activity, None)
        return
    if value == "done" and step in ("leads", "participants"):
        await mark_answered(query, t.ngettext("{count} chosen", "{count} chosen", len(picked)).format(count=t.number(len(picked))))
        if data.get("mode") == "edit":
            role = ActivityRole.LEAD if step == "leads" else ActivityRole.PARTICIPANT
            async with context.session() as session:
                fresh = await session.get(Activity, activity.id)
                await activities.set_people(session, activity=fresh, role=role, stakeholder_ids=picked, actor_user_id=context._user_id)
            await _show_card(update, context, fresh, note=t("✅ Saved."))
            return
        draft = {**data.get("draft", {}), step: picked}
        following = "participants" if step == "leads" else "confirm"
        await _ask(update, context, following, {**data, "draft": draft, "picked": [], "page": 0, "search": None})
        return
    await answer_stale(query, t)


async def _refresh_picker(context: ClusterContext, query: CallbackQuery, step: str, data: dict[str, Any]) -> None:
    await _save(context, step, data)
    text, rows = await _picker(context, step, data)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=inline(rows))
        except BadRequest:
            pass


async def _hand_over(update: Update, context: ClusterContext, activity: Activity, member: Stakeholder | None) -> None:
    t = context.t
    async with context.session() as session:
        fresh = await session.get(Activity, activity.id)
        removed = await activities.set_coordinator(
            session, activity=fresh, stakeholder_id=member.id if member else None, actor_user_id=context._user_id
        )
        if member is not None:
            await outbox.enqueue(session, drafts=await activities.handover_drafts(session, activity=fresh, stakeholder=member))
        changed = [member] if member is not None else []
        changed += [s for sid in removed if (s := await session.get(Stakeholder, sid)) is not None]
        menus = [(s, bool(await coordinated_activities(session, stakeholder_id=s.id))) for s in changed]
    _sender(context)
    # Their command menu shows /activity while they coordinate something, and not after.
    for person, coordinates in menus:
        await set_chat_menu(context.bot, person.telegram_user_id, person.language, cda=False, coordinator=coordinates)
    note = (
        t("🧭 {name} now coordinates this activity and has been told.").format(name=escape(member.name))
        if member is not None else t("✅ Nobody coordinates this activity now.")
    )
    await _show_card(update, context, fresh, note=note)


async def _on_edit(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "back":
        await query.answer()
        await _drop_buttons(query)
        await _show_card(update, context, activity)
    elif value == "tlang":
        await mark_answered(query, t("🌐 Title in another language"))
        await _ask(update, context, "title_lang", data)
    elif value in FIELD_LABELS:
        await mark_answered(query, t(FIELD_LABELS[value]))
        await _ask(update, context, value, {**data, "lang": None})
    else:
        await answer_stale(query, t)


async def _on_title_lang(update, context, query, step, value, data, activity) -> None:
    if value == "back":
        await query.answer()
        await _drop_buttons(query)
        await _show_card(update, context, activity)
    elif value in LANGUAGES:
        await mark_answered(query, LANGUAGES[value])
        await _ask(update, context, "title", {**data, "mode": "edit", "lang": value})
    else:
        await answer_stale(query, context.t)


async def _on_status(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "back":
        await query.answer()
        await _drop_buttons(query)
        await _show_card(update, context, activity)
        return
    if value not in STATUS_LABELS:
        await answer_stale(query, t)
        return
    await mark_answered(query, t(STATUS_LABELS[value]))
    async with context.session() as session:
        fresh = await session.get(Activity, activity.id)
        cluster = await session.get(Cluster, fresh.cluster_id)
        await activities.set_status(session, activity=fresh, status=value, actor_user_id=context._user_id, today=_today(context, cluster))
    await _show_card(update, context, fresh, note=t("✅ Saved."))


async def _on_cancel_confirm(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "yes":
        await mark_answered(query, t("Yes, cancel it"))
        async with context.session() as session:
            fresh = await session.get(Activity, activity.id)
            await activities.set_status(session, activity=fresh, status=ActivityStatus.CANCELLED, actor_user_id=context._user_id)
        await _show_card(update, context, fresh, note=t("The activity is cancelled."))
    else:
        await mark_answered(query, t("No"))
        await _show_card(update, context, activity)


async def _on_audience(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "back":
        await query.answer()
        await _drop_buttons(query)
        await _show_card(update, context, activity)
        return
    if step == "audience":
        if value == "role":
            await mark_answered(query, t("One role"))
            await _ask(update, context, "aud_role", data)
            return
        if value == "language":
            await mark_answered(query, t("One language"))
            await _ask(update, context, "aud_lang", data)
            return
        if value not in ("all", "participants"):
            await answer_stale(query, t)
            return
        label = t("Everyone in the cluster") if value == "all" else t("The people on this activity")
        await mark_answered(query, label)
        audience = {"kind": value, "value": None}
    else:
        valid = ROLE_LABELS if step == "aud_role" else LANGUAGES
        if value not in valid:
            await answer_stale(query, t)
            return
        await mark_answered(query, t(ROLE_LABELS[value]) if step == "aud_role" else LANGUAGES[value])
        audience = {"kind": "role" if step == "aud_role" else "language", "value": value}
    # A fresh token per preview: pressing Send twice queues nothing twice.
    await _ask(update, context, "ann_confirm", {**data, "audience": audience, "token": secrets.token_hex(6)})


async def _on_announce_confirm(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value != "send":
        await mark_answered(query, t("Cancel"))
        await _show_card(update, context, activity, note=t("Cancelled. Nothing was sent."))
        return
    await mark_answered(query, t("📤 Send"))
    audience = data["audience"]
    async with context.session() as session:
        fresh = await session.get(Activity, activity.id)
        count = await activities.announce(
            session, activity=fresh, kind=audience["kind"], value=audience.get("value"), token=data["token"],
            actor_user_id=context._user_id,
        )
    _sender(context)
    note = t.ngettext("The announcement is on its way to {count} person.", "The announcement is on its way to {count} people.", count).format(count=t.number(count))
    await _show_card(update, context, fresh, note=note)


async def _on_notice_back(update, context, query, step, value, data, activity) -> None:
    await query.answer()
    await _drop_buttons(query)
    await _show_card(update, context, activity)


async def _on_notice_confirm(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value != "send":
        await mark_answered(query, t("Cancel"))
        await _show_card(update, context, activity, note=t("Cancelled. Nothing was sent."))
        return
    await mark_answered(query, t("📤 Send"))
    async with context.session() as session:
        fresh = await session.get(Activity, activity.id)
        count = await activities.send_notice(
            session, activity=fresh, text=data["notice"], sender_name=data.get("sender", ""),
            sender_id=context.stakeholder.id if context.stakeholder else None, token=data["token"],
            actor_user_id=context._user_id,
        )
    _sender(context)
    note = t.ngettext("Your notice is on its way to {count} person.", "Your notice is on its way to {count} people.", count).format(count=t.number(count))
    await _show_card(update, context, fresh, note=note)


async def _on_import_back(update, context, query, step, value, data, activity) -> None:
    await query.answer()
    await _drop_buttons(query)
    await _show_list(update, context, data["cluster_id"])


BUTTON_STEPS = {
    "list": _on_list,
    "card": _on_card,
    "leads": _on_picker,
    "participants": _on_picker,
    "coordinator": _on_picker,
    "edit": _on_edit,
    "title_lang": _on_title_lang,
    "status": _on_status,
    "cancel_confirm": _on_cancel_confirm,
    "audience": _on_audience,
    "aud_role": _on_audience,
    "aud_lang": _on_audience,
    "ann_confirm": _on_announce_confirm,
    "notice": _on_notice_back,
    "notice_confirm": _on_notice_confirm,
    "import": _on_import_back,
}


async def _on_new_confirm(update, context, query, step, value, data, activity) -> None:
    t = context.t
    if value == "discard":
        await mark_answered(query, t("✖ Discard"))
        await _show_list(update, context, data["cluster_id"])
        return
    if value != "save":
        await answer_stale(query, t)
        return
    draft = data.get("draft", {})
    try:
        async with context.session() as session:
            created = await activities.create_activity(
                session, cluster_id=data["cluster_id"], year=draft["year"], title=draft["title"],
                category=draft.get("category") or "other", description=draft.get("description"),
                start_date=date.fromisoformat(draft["start_date"]) if draft.get("start_date") else None,
                due_date=date.fromisoformat(draft["due_date"]) if draft.get("due_date") else None,
                venue=draft.get("venue"), target=draft.get("target"), leads=draft.get("leads", []),
                participants=draft.get("participants", []), actor_user_id=context._user_id,
            )
    except ActivityProblem as problem:
        await query.answer()
        await _ask(update, context, "confirm", data, warning=problem.text(t))
        return
    await mark_answered(query, t("✅ Save"))
    await _show_card(update, context, created, note=t("✅ The activity is saved. Announce it when you are ready."))


BUTTON_STEPS["confirm"] = _on_new_confirm


# ---------------------------------------------------------------- typed messages and files


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    data, step = dict(state.data), state.step
    text = update.effective_message.text
    if not (context.is_cda or context.is_coordinator):
        await _clear(context)
        await refuse(update, context, "activity")
        return
    if "activity_id" in data:
        action = "notice" if step == "notice" else step
        if await _allowed_activity(context, data["activity_id"], action) is None:
            await _refused(update, context, action, f"activity:{data['activity_id']}")
            return
    elif step != "cluster" and not _is_cda_of(context, data.get("cluster_id")):
        await _refused(update, context, step, f"cluster:{data.get('cluster_id')}")
        return
    if text is None:
        await send(update, t("Please answer with text or the buttons below."))
        await _reshow(update, context, step, data)
        return
    if step in TYPED:
        try:
            value = _parse_field(step, text)
        except ActivityProblem as problem:
            await _ask(update, context, step, data, warning=problem.text(t))
            return
        await _field_answered(update, context, step, value, data)
    elif step in PICKERS:
        search = " ".join(text.split())[:50]
        async with context.session() as session:
            _, total = await surveys.cluster_members(session, cluster_id=data["cluster_id"], exclude=None, search=search, offset=0, limit=1)
        if not total:
            await _ask(update, context, step, data, warning=t("Nobody found with that name. Try a shorter part of the name."))
            return
        await _ask(update, context, step, {**data, "search": search, "page": 0})
    elif step == "notice":
        try:
            notice = activities.clean_text(text, limit=activities.MAX_NOTICE, multiline=True)
        except ActivityProblem as problem:
            await _ask(update, context, step, data, warning=problem.text(t))
            return
        sender = context.stakeholder.name if context.stakeholder else update.effective_user.full_name
        await _ask(update, context, "notice_confirm", {**data, "notice": notice, "sender": sender, "token": secrets.token_hex(6)})
    elif step == "import":
        await _ask(update, context, step, data, warning=t("Please send the file (CSV or Excel)."))
    else:
        await send(update, t("Please use the buttons below."))
        await _reshow(update, context, step, data)


async def on_document(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    data, step = dict(state.data), state.step
    if step not in ("list", "import") or data.get("coord") or not _is_cda_of(context, data.get("cluster_id")):
        if not context.is_cda:
            await _refused(update, context, "import", "/activity")
            return
        await send(update, t("Please use the buttons below."))
        await _reshow(update, context, step, data)
        return
    document = update.effective_message.document
    if document.file_size and document.file_size > MAX_BYTES:
        await _ask(update, context, "import", data, warning=t("The file is too large; split it into smaller files."))
        return
    telegram_file = await context.bot.get_file(document.file_id)
    content = bytes(await telegram_file.download_as_bytearray())
    async with context.session() as session:
        cluster = await session.get(Cluster, data["cluster_id"])
        result = await import_activities(
            session, cluster=cluster, filename=document.file_name or "", data=content, actor_user_id=context._user_id
        )
    if not result.ok:
        lines = [t("Nothing was imported. Please fix these problems and send the file again:"), ""]
        lines += [escape(problem.text(t)) for problem in result.problems[:15]]
        if len(result.problems) > 15:
            lines.append(t("…and {count} more.").format(count=t.number(len(result.problems) - 15)))
        await _save(context, "import", data)
        await send(update, "\n".join(lines))
        return
    await send(update, t.ngettext("✅ Imported {count} activity.", "✅ Imported {count} activities.", result.created).format(count=t.number(result.created)))
    await _show_list(update, context, cluster.id)


async def on_photo(update: Update, context: ClusterContext, state) -> None:
    await send(update, context.t("Please use the buttons below."))
    await _reshow(update, context, state.step, dict(state.data))


# ---------------------------------------------------------------- RSVPs and reports of one activity


async def _send_rsvps(update: Update, context: ClusterContext, activity: Activity) -> None:
    t = context.t
    async with context.session() as session:
        found = await activities.rsvps(session, activity=activity, actor_user_id=context._user_id)
    if not found:
        await send(update, t("No meeting has been called for this activity yet."))
        return
    for item in found:
        meeting = item.meeting
        lines = [f"<b>{escape(meeting.title)}</b> — {t.datetime(as_utc(meeting.starts_at), 'medium')}"]
        if meeting.status == "cancelled":
            lines.append(t("Cancelled"))
        lines.append(t("Yes: {yes} · No: {no} · Maybe: {maybe} · Not answered: {none}").format(
            **{key: t.number(value) for key, value in item.counts.items()}
        ))
        for name, response in item.answers:
            answer = t(RSVP_LABELS[response]) if response else t("not answered")
            lines.append(f"• {escape(name)}: {escape(answer)}")
        await send(update, "\n".join(lines))


async def _send_reports(update: Update, context: ClusterContext, activity: Activity) -> None:
    t = context.t
    async with context.session() as session:
        cluster = await session.get(Cluster, activity.cluster_id)
        found = await report_service.submitted_reports(session, activity=activity, actor_user_id=context._user_id)
    if not found:
        await send(update, t("No report on this activity yet."))
        return
    for report, name in found[:10]:
        text = report_service.report_text(t, report, activity, cluster.language, reporter=name)
        text += "\n" + t("Sent on {date}").format(date=t.date(as_utc(report.submitted_at), "medium"))
        markup = report_service.review_markup(t, report)
        await send(update, text, reply_markup=InlineKeyboardMarkup.de_json(markup, context.bot) if markup else None)


# ---------------------------------------------------------------- /activities


async def upcoming(update: Update, context: ClusterContext) -> None:
    t = context.t
    if context.stakeholder is None and not context.is_cda:
        await send(update, t("You are not registered yet. Please open the invite link your CDA shared with you."))
        return
    async with context.session() as session:
        items = await activities.upcoming_for(
            session, stakeholder=context.stakeholder, cluster_ids=context.cda_cluster_ids,
            today=utcnow().astimezone(t.zone).date(),
        )
    if not items:
        await send(update, t("Nothing is planned for you at the moment."))
        return
    blocks = [t("<b>Coming up for you</b>")]
    for item in items:
        local = Translator(t.language, item.timezone)
        if item.kind == "activity":
            activity = item.activity
            lines = [f"📅 <b>{escape(activities.title_of(activity, local.language, item.fallback))}</b>"]
            lines += activities.details_lines(local, activity, item.fallback, description=False)
            if item.roles:
                roles = ", ".join(t(PERSON_ROLE_LABELS[r]) for r in PERSON_ROLE_LABELS if r in item.roles)
                lines.append(t("You: {roles}").format(roles=escape(roles)))
        else:
            meeting = item.meeting
            lines = [f"🤝 <b>{escape(meeting.title)}</b>", local.datetime(as_utc(meeting.starts_at), "medium")]
            if meeting.venue:
                lines.append(t("Venue: {venue}").format(venue=escape(meeting.venue)))
            answer = t(RSVP_LABELS[item.response]) if item.response in RSVP_LABELS else t("not answered")
            if context.stakeholder is not None:
                lines.append(t("Your answer: {answer}").format(answer=escape(answer)))
        blocks.append("\n".join(lines))
    await send(update, "\n\n".join(blocks))


HANDLERS = [
    CommandHandler("activity", activity_command, filters=filters.ChatType.PRIVATE),
    CommandHandler("activities", upcoming, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
]
