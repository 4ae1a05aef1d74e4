"""CDA side of surveys: /launch (pick, audience, closing date, preview, confirm) and /results.

/launch is a short admin dialog whose state is a dialog_state row, like every other flow.
"""

from __future__ import annotations

import functools
from datetime import datetime, time, timedelta
from html import escape

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.languages import LANGUAGES
from bot.services import dialogs, outbox
from bot.services.fields import ROLE_LABELS
from bot.services.surveys import engine
from bot.services.surveys import service as surveys
from bot.services.surveys.model import text_in
from bot.services.surveys.notices import invitation_drafts, invitation_text
from handlers.cda import refuse
from handlers.common import (
    answer_stale,
    inline,
    load_flow,
    mark_answered,
    one_per_row,
    save_step,
    send,
)
from models import Cluster, Survey, SurveyLaunch
from models.base import utcnow

FLOW = "lch"
RESULTS = "res"
CLOSING_CHOICES = (3, 7, 14)


def _title(t, survey: Survey) -> str:
    return text_in(survey.title, t.language, survey.default_language)


async def launch(update: Update, context: ClusterContext) -> None:
    t = context.t
    if not context.is_cda:
        await refuse(update, context, "launch")
        return
    async with context.session() as session:
        found = [s for cid in context.cda_cluster_ids for s in (await surveys.list_surveys(session, cluster_id=cid))]
        clusters = {c.id: c.name for cid in context.cda_cluster_ids if (c := await session.get(Cluster, cid))}
        if not found:
            await send(update, t("There are no surveys yet. The operator adds them with: cluster-bot survey import FILE --cluster CODE"))
            return
        await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step="survey")
    several = len(clusters) > 1
    buttons = [
        ((f"{clusters[item.survey.cluster_id]} — " if several else "") + f"{_title(t, item.survey)} (v{item.survey.version})",
         step_button(FLOW, "survey", str(item.survey.id)))
        for item in found
    ]
    await send(update, t("Which survey do you want to send?"), reply_markup=one_per_row(buttons))


_state = load_flow


_save = functools.partial(save_step, flow=FLOW)


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    state = await _state(context)
    if not context.is_cda:
        await query.answer(t("Sorry, only the CDA of a cluster can use this command."))
        return
    if button is None or state is None or state.flow != FLOW or state.step != button.step:
        await answer_stale(query, t)
        return
    data = dict(state.data)
    if button.step == "survey":
        async with context.session() as session:
            survey = await session.get(Survey, int(button.value)) if button.value.isdigit() else None
        if survey is None or survey.cluster_id not in context.cda_cluster_ids:
            await answer_stale(query, t)
            return
        await mark_answered(query, _title(t, survey))
        await _save(context, "audience", {"survey_id": survey.id})
        await send(update, t("Who should receive it?"), reply_markup=inline([
            [(t("Everyone in the cluster"), step_button(FLOW, "audience", "all"))],
            [(t("One role"), step_button(FLOW, "audience", "role"))],
            [(t("One language"), step_button(FLOW, "audience", "language"))],
        ]))
    elif button.step == "audience":
        if button.value == "role":
            await mark_answered(query, t("One role"))
            await _save(context, "role", data)
            await send(update, t("Which role?"), reply_markup=one_per_row(
                (t(label), step_button(FLOW, "role", role)) for role, label in ROLE_LABELS.items()))
            return
        if button.value == "language":
            await mark_answered(query, t("One language"))
            await _save(context, "language", data)
            await send(update, t("Which language?"), reply_markup=one_per_row(
                (name, step_button(FLOW, "language", code)) for code, name in LANGUAGES.items()))
            return
        await mark_answered(query, t("Everyone in the cluster"))
        await _ask_closing(update, context, {**data, "audience": {"kind": "all", "value": None}})
    elif button.step in ("role", "language"):
        valid = ROLE_LABELS if button.step == "role" else LANGUAGES
        if button.value not in valid:
            await answer_stale(query, t)
            return
        await mark_answered(query, t(ROLE_LABELS[button.value]) if button.step == "role" else LANGUAGES[button.value])
        await _ask_closing(update, context, {**data, "audience": {"kind": button.step, "value": button.value}})
    elif button.step == "closes":
        if not button.value.isdigit() or int(button.value) not in CLOSING_CHOICES:
            await answer_stale(query, t)
            return
        days = int(button.value)
        await mark_answered(query, t.ngettext("In {count} day", "In {count} days", days).format(count=t.number(days)))
        closes = datetime.combine(utcnow().astimezone(t.zone).date() + timedelta(days=days), time(23, 59), t.zone)
        await _preview(update, context, {**data, "closes_at": closes.isoformat()})
    elif button.step == "confirm":
        if button.value != "send":
            await mark_answered(query, t("Cancel"))
            async with context.session() as session:
                await dialogs.clear_state(session, telegram_user_id=context._user_id)
            await send(update, t("Cancelled. Nothing was sent."))
            return
        await mark_answered(query, t("📤 Send"))
        await _send_launch(update, context, data)


async def _ask_closing(update: Update, context: ClusterContext, data: dict) -> None:
    t = context.t
    await _save(context, "closes", data)
    buttons = [(t.ngettext("In {count} day", "In {count} days", days).format(count=t.number(days)), step_button(FLOW, "closes", str(days))) for days in CLOSING_CHOICES]
    await send(update, t("When does the survey close? Press a button or type a date as day/month/year."), reply_markup=inline([buttons]))


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    if state.step != "closes":
        await send(update, t("Please use the buttons below."))
        return
    try:
        day = engine.parse_date(update.effective_message.text or "")
    except engine.InvalidAnswer as problem:
        await send(update, t(problem.msgid))
        return
    closes = datetime.combine(day, time(23, 59), t.zone)
    if closes <= utcnow():
        await send(update, t("That date has passed. Please give a date in the future."))
        return
    await _preview(update, context, {**state.data, "closes_at": closes.isoformat()})


async def _audience_label(t, audience: dict) -> str:
    if audience["kind"] == "role":
        return t(ROLE_LABELS[audience["value"]])
    if audience["kind"] == "language":
        return LANGUAGES[audience["value"]]
    return t("Everyone in the cluster")


async def _preview(update: Update, context: ClusterContext, data: dict) -> None:
    t = context.t
    async with context.session() as session:
        survey = await session.get(Survey, data["survey_id"])
        members = await surveys.audience_members(session, cluster_id=survey.cluster_id, audience=surveys.Audience(**data["audience"]))
    await _save(context, "confirm", data)
    closes = datetime.fromisoformat(data["closes_at"])
    summary = t("Survey: {title}\nTo: {audience} ({count})\nCloses: {date}").format(
        title=escape(_title(t, survey)),
        audience=escape(await _audience_label(t, data["audience"])),
        count=t.ngettext("{count} person", "{count} people", len(members)).format(count=t.number(len(members))),
        date=t.datetime(closes, "medium"),
    )
    preview = invitation_text(t, surveys.definition_of(survey), closes)
    await send(
        update,
        summary + "\n\n" + t("Each person gets this message in their own language, with a Start button:") + "\n\n<blockquote>" + preview + "</blockquote>",
        reply_markup=inline([[(t("📤 Send"), step_button(FLOW, "confirm", "send")), (t("Cancel"), step_button(FLOW, "confirm", "cancel"))]]),
    )


async def _send_launch(update: Update, context: ClusterContext, data: dict) -> None:
    t = context.t
    async with context.session() as session:
        survey = await session.get(Survey, data["survey_id"])
        if survey is None or survey.cluster_id not in context.cda_cluster_ids:
            await send(update, t("Sorry, only the CDA of a cluster can use this command."))
            return
        cluster = await session.get(Cluster, survey.cluster_id)
        launch_row, members = await surveys.create_launch(
            session, survey=survey, audience=surveys.Audience(**data["audience"]),
            closes_at=datetime.fromisoformat(data["closes_at"]), created_by=context._user_id,
        )
        drafts = invitation_drafts(launch_row, surveys.definition_of(survey), members, timezone=cluster.timezone)
        await outbox.enqueue(session, drafts=drafts)
        await dialogs.clear_state(session, telegram_user_id=context._user_id)
    sender = context.deps.extra.get("sender")
    if sender is not None:
        sender.notify()
    await send(update, t.ngettext(
        "The invitation is on its way to {count} person. Use /results to follow the answers.",
        "The invitation is on its way to {count} people. Use /results to follow the answers.",
        len(members),
    ).format(count=t.number(len(members))))


async def results(update: Update, context: ClusterContext) -> None:
    t = context.t
    if not context.is_cda:
        await refuse(update, context, "results")
        return
    async with context.session() as session:
        launches = await surveys.launches_of(session, cluster_ids=context.cda_cluster_ids)
    if not launches:
        await send(update, t("No survey has been sent yet. Use /launch to send one."))
        return
    buttons = [
        (f"{_title(t, survey)} — {t.date(launch_row.created_at, 'medium')} (#{t.number(launch_row.wave)})", f"{RESULTS}:{launch_row.id}")
        for launch_row, survey in launches[:20]
    ]
    await send(update, t("Which survey round?"), reply_markup=one_per_row(buttons))


async def on_results_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    try:
        launch_id = int((query.data or "").split(":")[1])
    except (IndexError, ValueError):
        launch_id = 0
    async with context.session() as session:
        launch_row = await session.get(SurveyLaunch, launch_id)
        if launch_row is None or launch_row.cluster_id not in context.cda_cluster_ids:
            await query.answer(t("Sorry, only the CDA of a cluster can use this command."))
            return
        result = await surveys.launch_results(session, launch=launch_row)
    await query.answer()
    await send(update, render_results(t, result))


def render_results(t, result: surveys.LaunchResults) -> str:
    definition = surveys.definition_of(result.survey)
    language, fallback = t.language, definition.default_language
    lines = [
        f"<b>{escape(text_in(definition.title, language, fallback))}</b> (#{t.number(result.launch.wave)})",
        t("Answered: {completed} of {invited} ({rate}), {open} still answering").format(
            completed=t.number(result.completed), invited=t.number(result.invited),
            rate=t.percent(result.rate), open=t.number(result.in_progress)),
        "",
    ]
    for summary in result.questions:
        question = definition.question(summary.name)
        label = text_in(question.label, language, fallback)
        lines.append(f"<b>{escape(label[:80])}</b>")
        if summary.counts and question.type in ("select_one", "select_multiple"):
            for choice in question.choices:
                lines.append(f"  {escape(text_in(choice.label, language, fallback))}: {t.number(summary.counts.get(choice.name, 0))}")
        elif summary.mean is not None:
            lines.append("  " + t("average {mean}, median {median}").format(mean=t.number(round(summary.mean, 1)), median=t.number(round(summary.median, 1))))
        else:
            lines.append("  " + t.ngettext("{count} answer", "{count} answers", summary.answered).format(count=t.number(summary.answered)))
    return "\n".join(lines)


HANDLERS = [
    CommandHandler("launch", launch, filters=filters.ChatType.PRIVATE),
    CommandHandler("results", results, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
    CallbackQueryHandler(on_results_button, pattern=rf"^{RESULTS}:"),
]
