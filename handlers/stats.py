"""/stats and /export for the CDA: the dashboard, its sections as charts, and the cluster's data
as a file.

Buttons carry ``sts:<action>:<cluster id>[:<section>]``; the cluster is checked against the CDA's
own clusters on every press, so a forged or forwarded button shows nothing. None of these steps
keeps state: each press is a complete request.
"""

from __future__ import annotations

from html import escape

from telegram import Update
from telegram.constants import ChatAction
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import audit, charts, exports, stats
from bot.services.activities import STATUS_LABELS
from bot.services.fields import ROLE_LABELS
from bot.services.network import NetworkWave
from bot.services.surveys.model import text_in
from handlers.cda import refuse
from handlers.common import inline, mark_answered, send
from models import Cluster

FLOW = "sts"
# Steps: the cluster for the dashboard, for a file (value "<cluster>:<format>"), a chart, a file.
PICK, PICK_EXPORT, CHART = "pick", "exp", "chart"

SECTION_LABELS = {
    "members": N_("Members"),
    "surveys": N_("Surveys"),
    "plan": N_("Action plan"),
    "meetings": N_("Meetings"),
    "trust": N_("Trust index"),
    "network": N_("Linkage network"),
}
ROUNDS_LISTED = 6
MEETINGS_LISTED = 5
WAVES_LISTED = 4


# ---------------------------------------------------------------- the dashboard text


def _short(text: str, limit: int = 60) -> str:
    """Long titles are cut, so the dashboard stays within one Telegram message."""
    return escape(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")


def _heading(t: Translator, msgid: str) -> str:
    return f"\n<b>{escape(t(msgid))}</b>"


def _members(t: Translator, figures: stats.MemberFigures) -> list[str]:
    lines = [
        _heading(t, N_("Members")),
        t("Members: {count}").format(count=t.number(figures.total)),
    ]
    if figures.total:
        lines.append(t("Unreachable: {count} ({share})").format(
            count=t.number(figures.unreachable), share=t.percent(figures.unreachable_share)))
        roles = " · ".join(
            f"{escape(t(ROLE_LABELS.get(role, ROLE_LABELS['other'])))} {t.number(count)}"
            for role, count in figures.by_role.items()
        )
        languages = " · ".join(f"{LANGUAGES.get(code, escape(code))} {t.number(count)}" for code, count in figures.by_language.items())
        lines.append(t("By role: {list}").format(list=roles))
        lines.append(t("By language: {list}").format(list=languages))
    lines.append(t("New in the last 30 days: {count}").format(count=t.number(figures.joined_recently)))
    return lines


def _surveys(t: Translator, rates: list[stats.WaveRate]) -> list[str]:
    lines = [_heading(t, N_("Surveys"))]
    if not rates:
        return lines + [t("No survey has been sent yet.")]
    for rate in rates[-ROUNDS_LISTED:]:
        lines.append(t("{survey} — {round}: {completed} of {invited} ({rate})").format(
            survey=_short(text_in(rate.title, t.language, rate.default_language)),
            round=charts.round_label(t, rate.wave, baseline=False), completed=t.number(rate.completed),
            invited=t.number(rate.invited), rate=t.percent(rate.rate)))
    earlier = len(rates) - ROUNDS_LISTED
    if earlier > 0:
        lines.append(t.ngettext("…and {count} earlier round", "…and {count} earlier rounds", earlier).format(count=t.number(earlier)))
    return lines


def _plan(t: Translator, plan: stats.PlanFigures, cluster: Cluster) -> list[str]:
    lines = [_heading(t, N_("Action plan"))]
    if not plan.total and not plan.reports_received:
        return lines + [t("No activity planned yet.")]
    counts = {status: t.number(plan.by_status.get(status, 0)) for status in STATUS_LABELS}
    lines.append(t("Activities: {total} — planned {planned}, in progress {in_progress}, done {done}, cancelled {cancelled}").format(
        total=t.number(plan.total), **counts))
    if plan.on_time_share is not None:
        lines.append(t("Done on time: {share}").format(share=t.percent(plan.on_time_share)))
    lines.append(t("Overdue: {count}").format(count=t.number(plan.overdue_count)))
    for activity in plan.overdue:
        lines.append(t("• {title}, due {date}").format(
            title=_short(text_in(activity.title, t.language, cluster.language)), date=t.date(activity.due_date, "medium")))
    lines.append(t("Reports: {received} received, {verified} verified").format(
        received=t.number(plan.reports_received), verified=t.number(plan.reports_verified)))
    return lines


def _meetings(t: Translator, meetings: list[stats.MeetingFigures]) -> list[str]:
    lines = [_heading(t, N_("Meetings"))]
    if not meetings:
        return lines + [t("No meeting yet.")]
    for meeting in meetings[:MEETINGS_LISTED]:
        lines.append(t("{title}, {date}: invited {invited} — yes {yes}, no {no}, maybe {maybe}, no reply {none}").format(
            title=_short(meeting.title), date=t.date(meeting.starts_at, "medium"), invited=t.number(meeting.invited),
            yes=t.number(meeting.yes), no=t.number(meeting.no), maybe=t.number(meeting.maybe),
            none=t.number(meeting.no_reply)))
    return lines


def _trust(t: Translator, waves: list[stats.TrustWave]) -> list[str]:
    lines = [_heading(t, N_("Trust index (1–5)"))]
    waves = [wave for wave in waves if wave.index is not None]
    if not waves:
        return lines + [t("No trust survey answered yet.")]
    forms = list(dict.fromkeys(wave.form_id for wave in waves))
    for form in forms:
        own = [wave for wave in waves if wave.form_id == form]
        if len(forms) > 1:
            lines.append(_short(text_in(own[-1].title, t.language, own[-1].default_language)))
        for wave in own[-WAVES_LISTED:]:
            index = t.number(round(wave.index, 1))
            if wave.change is None:
                lines.append(t("{round}: {index}").format(round=charts.round_label(t, wave.wave), index=index))
            else:
                lines.append(t("{round}: {index} ({change})").format(
                    round=charts.round_label(t, wave.wave), index=index, change=charts.signed(t, wave.change, 1)))
    return lines


def _network(t: Translator, waves: list[NetworkWave]) -> list[str]:
    lines = [_heading(t, N_("Linkage network"))]
    if not waves:
        return lines + [t("No linkage answers yet.")]
    for wave in waves[-WAVES_LISTED:]:
        share = t.percent(wave.firm_share) if wave.firm_share is not None else "—"
        lines.append(t("{round}: {ties} ties, density {density}, firms linked to an institution or bank {share}").format(
            round=charts.round_label(t, wave.wave), ties=t.number(wave.ties), density=charts.percent(t, wave.density),
            share=share))
    latest = waves[-1]
    if latest.previous is not None:
        points = (
            t("{change} points").format(change=charts.signed(t, latest.share_change * 100, 0))
            if latest.share_change is not None else "—"
        )
        lines.append(t("Change since the previous round: {ties} ties, firms linked {points}").format(
            ties=charts.signed(t, latest.ties_change, 0), points=points))
    if latest.most_connected:
        lines.append(t("Most connected: {list}").format(list=", ".join(
            f"{_short(member.name, 40)} ({t.number(member.degree)})" for member in latest.most_connected)))
    return lines


def render_dashboard(t: Translator, board: stats.Dashboard) -> str:
    lines = [t("📊 <b>{cluster}</b>, {date}").format(cluster=escape(board.cluster.name), date=t.date(board.today, "medium"))]
    lines += _members(t, board.members)
    lines += _surveys(t, board.surveys)
    lines += _plan(t, board.plan, board.cluster)
    lines += _meetings(t, board.meetings)
    lines += _trust(t, board.trust)
    lines += _network(t, board.network)
    return "\n".join(lines)


def dashboard_buttons(t: Translator, cluster_id: int):
    charts_row = [
        (t("📈 {section}").format(section=t(label)), step_button(FLOW, CHART, f"{cluster_id}:{section}"))
        for section, label in SECTION_LABELS.items()
    ]
    rows = [charts_row[i : i + 2] for i in range(0, len(charts_row), 2)]
    rows.append([
        (t("⬇ Excel file"), step_button(FLOW, "xlsx", str(cluster_id))),
        (t("⬇ CSV files (zip)"), step_button(FLOW, "csv", str(cluster_id))),
    ])
    return inline(rows)


# ---------------------------------------------------------------- replies


async def send_dashboard(update: Update, context: ClusterContext, cluster: Cluster) -> None:
    await update.effective_chat.send_action(ChatAction.TYPING)
    async with context.session() as session:
        board = await stats.dashboard(session, cluster=cluster)
    await send(update, render_dashboard(context.t, board), reply_markup=dashboard_buttons(context.t, cluster.id))


async def send_chart(update: Update, context: ClusterContext, cluster: Cluster, section: str) -> None:
    t = context.t
    await update.effective_chat.send_action(ChatAction.UPLOAD_PHOTO)
    async with context.session() as session:
        png = await charts.section_png(session, cluster=cluster, section=section, t=t)
    if png is None:
        await send(update, t("Nothing to draw yet for this section."))
        return
    caption = t("{section} — {cluster}").format(section=escape(t(SECTION_LABELS[section])), cluster=escape(cluster.name))
    await update.effective_chat.send_photo(png, caption=caption)


async def send_export(update: Update, context: ClusterContext, cluster: Cluster, fmt: str) -> None:
    t = context.t
    await update.effective_chat.send_action(ChatAction.UPLOAD_DOCUMENT)
    async with context.session() as session:
        filename, content = await exports.write_export(
            session, cluster=cluster, fmt=fmt, language=t.language, actor_user_id=context._user_id
        )
    caption = (
        t("Data of {cluster}: one sheet per table.") if fmt == "xlsx"
        else t("Data of {cluster}: one CSV file per table, in a zip.")
    ).format(cluster=escape(cluster.name))
    await update.effective_chat.send_document(content, filename=filename, caption=caption)


# ---------------------------------------------------------------- commands and buttons


async def _my_clusters(context: ClusterContext) -> list[Cluster]:
    async with context.session() as session:
        found = [await session.get(Cluster, cluster_id) for cluster_id in context.cda_cluster_ids]
    return [cluster for cluster in found if cluster is not None]


async def _one_cluster(
    update: Update, context: ClusterContext, command: str, step: str, suffix: str = ""
) -> Cluster | None:
    """The CDA's cluster, or None after asking which one (or saying there is none yet)."""
    t = context.t
    if not context.is_cda:
        await refuse(update, context, command)
        return None
    clusters = await _my_clusters(context)
    if not clusters:
        await send(update, t("There is no cluster for you yet. The operator creates one with: cluster-bot cluster create NAME"))
        return None
    if len(clusters) == 1:
        return clusters[0]
    await send(update, t("Which cluster?"), reply_markup=inline(
        [(cluster.name, step_button(FLOW, step, f"{cluster.id}:{suffix}" if suffix else str(cluster.id)))]
        for cluster in clusters
    ))
    return None


async def show_stats(update: Update, context: ClusterContext) -> None:
    cluster = await _one_cluster(update, context, "stats", PICK)
    if cluster is not None:
        await send_dashboard(update, context, cluster)


async def export(update: Update, context: ClusterContext) -> None:
    t = context.t
    args = [arg.lower() for arg in (context.args or [])]
    fmt = args[0] if args else "xlsx"
    if fmt not in exports.FORMATS or len(args) > 1:
        await send(update, t("Send /export for an Excel file, or /export csv for CSV files in a zip."))
        return
    cluster = await _one_cluster(update, context, "export", PICK_EXPORT, fmt)
    if cluster is not None:
        await send_export(update, context, cluster, fmt)


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    cluster_part, _, section = (button.value if button else "").partition(":")
    cluster_id = int(cluster_part) if cluster_part.isdigit() else None
    valid = button is not None and (
        (button.step == CHART and section in SECTION_LABELS)
        or (button.step == PICK_EXPORT and section in exports.FORMATS)
        or (button.step in (PICK, *exports.FORMATS) and not section)
    )
    # The cluster is checked against this user's own clusters on every press.
    if not valid or cluster_id is None or cluster_id not in context.cda_cluster_ids:
        async with context.session() as session:
            audit.record(session, actor_user_id=context._user_id, action="refused", subject=(query.data or "")[:64])
            await session.commit()
        await query.answer(t("Sorry, only the CDA of a cluster can use this command."))
        return
    async with context.session() as session:
        cluster = await session.get(Cluster, cluster_id)
    if cluster is None:
        await query.answer(t("Sorry, only the CDA of a cluster can use this command."))
        return
    if button.step == PICK:
        await mark_answered(query, cluster.name)
        await send_dashboard(update, context, cluster)
    elif button.step == PICK_EXPORT:
        await mark_answered(query, cluster.name)
        await send_export(update, context, cluster, section)
    elif button.step == CHART:
        await query.answer()
        await send_chart(update, context, cluster, section)
    else:
        await query.answer()
        await send_export(update, context, cluster, button.step)


HANDLERS = [
    CommandHandler("stats", show_stats, filters=filters.ChatType.PRIVATE),
    CommandHandler("export", export, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
]
