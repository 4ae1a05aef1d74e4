"""/report: a stakeholder reports progress on one of their activities, step by step; and the
buttons the CDA and the coordinator get with each report (verify, see the photos).

The report row is the state: its ``step`` is committed with every answer, so a restart continues
at the same question. dialog_state only says which report typed messages belong to.
"""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from telegram import InputMediaPhoto, Message, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.callbacks import StepButton, step_button
from bot.context import ClusterContext
from bot.i18n import N_
from bot.services import audit, dialogs
from bot.services import reports as service
from bot.services.activities import title_of
from bot.services.reports import PHOTOS_PREFIX, START_PREFIX, VERIFY_PREFIX, ReportProblem
from handlers.common import answer_stale, inline, mark_answered, send
from models import Activity, Cluster, CompletionReport
from models.base import utcnow

FLOW = "rpt"


def _not_registered(context: ClusterContext) -> str:
    return context.t("You are not registered yet. Please open the invite link your CDA shared with you.")


async def report_command(update: Update, context: ClusterContext) -> None:
    t = context.t
    stakeholder = context.stakeholder
    if stakeholder is None:
        await send(update, _not_registered(context))
        return
    async with context.session() as session:
        found = await service.reportable(session, stakeholder_id=stakeholder.id)
        clusters = {a.cluster_id: await session.get(Cluster, a.cluster_id) for a, _ in found}
        if found:
            await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step="pick")
    if not found:
        await send(update, t("You are not on any activity yet. When the CDA adds you to one, you can report on it here."))
        return
    rows = []
    for activity, draft in found:
        label = title_of(activity, t.language, clusters[activity.cluster_id].language)
        if draft is not None:
            label = "✏️ " + label
        rows.append([(label[:60], step_button(FLOW, "pick", str(activity.id)))])
    await send(update, t("Which activity do you want to report on?"), reply_markup=inline(rows))


async def _begin(update: Update, context: ClusterContext, activity_id: int | None) -> None:
    """Start (or resume) this stakeholder's report on an activity they are on."""
    t = context.t
    stakeholder = context.stakeholder
    query = update.callback_query
    async with context.session() as session:
        activity = await session.get(Activity, activity_id) if activity_id else None
        allowed = (
            stakeholder is not None and activity is not None
            and await service.may_report(session, activity=activity, stakeholder_id=stakeholder.id)
        )
        if not allowed:
            audit.record(session, actor_user_id=context._user_id, action="refused", subject=f"report:activity:{activity_id}")
            await session.commit()
            await query.answer(t("This activity is not open for your report."), show_alert=True)
            return
        cluster = await session.get(Cluster, activity.cluster_id)
        report, created = await service.start_or_resume(session, activity=activity, stakeholder=stakeholder)
        await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step=report.step, data={"report_id": report.id})
    await mark_answered(query, title_of(activity, t.language, cluster.language))
    if not created:
        await send(update, t("Welcome back! We continue where you left off."))
    await _ask(update, context, report)


# ---------------------------------------------------------------- the questions


async def _ask(update: Update, context: ClusterContext, report: CompletionReport, *, warning: str | None = None) -> None:
    t = context.t
    async with context.session() as session:
        activity = await session.get(Activity, report.activity_id)
        cluster = await session.get(Cluster, activity.cluster_id)
    title = escape(title_of(activity, t.language, cluster.language))
    step = report.step
    rows: list = []
    if step == "status":
        text = t("What is the status of “{title}”?").format(title=title)
        rows = [[(t(label), step_button(FLOW, step, code))] for code, label in service.REPORT_STATUS_LABELS.items()]
    elif step == "progress":
        text = t("How far along is it? Type a number from 0 to 100, or press a button.")
        rows = [[(t.percent(v / 100), step_button(FLOW, step, str(v))) for v in service.PROGRESS_BUTTONS]]
    elif step == "done_text":
        text = t("What was done? Write a few sentences.")
    elif step == "participants":
        text = t("How many people took part? Type a number.")
    elif step == "photos":
        count = len(report.photo_file_ids or [])
        text = t("Send photos as evidence, one or several. Press Done when you have sent them all, or if you have none.")
        if count:
            text += "\n" + t.ngettext("{count} photo saved.", "{count} photos saved.", count).format(count=t.number(count))
        rows = [[(t("Done ✔"), step_button(FLOW, step, "done"))]]
    else:
        text = t("Please check your report:") + "\n\n" + service.report_text(t, report, activity, cluster.language, reporter=None)
        rows = [[(t("📤 Submit"), step_button(FLOW, step, "submit")), (t("↺ Start again"), step_button(FLOW, step, "restart"))]]
    if warning:
        text = f"⚠️ {escape(warning)}\n\n{text}"
    await _drop_previous(context, update.effective_chat.id, report)
    message = await send(update, text, reply_markup=inline(rows) if rows else None)
    async with context.session() as session:
        fresh = await session.get(CompletionReport, report.id)
        await service.set_message(session, report=fresh, message_id=message.message_id)


async def _drop_previous(context: ClusterContext, chat_id: int, report: CompletionReport) -> None:
    """The question is asked again below, so the older copy keeps no live button."""
    message_id = (report.extra or {}).get("message_id")
    if message_id is None:
        return
    try:
        await context.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=None)
    except BadRequest:
        pass


async def _current(update: Update, context: ClusterContext, state) -> CompletionReport | None:
    stakeholder = context.stakeholder
    report_id = (state.data or {}).get("report_id") if state is not None else None
    async with context.session() as session:
        report = (
            await service.owned_draft(session, report_id=int(report_id), stakeholder_id=stakeholder.id)
            if stakeholder is not None and report_id else None
        )
        if report is None:
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
    return report


async def _advance(update: Update, context: ClusterContext, report: CompletionReport) -> None:
    async with context.session() as session:
        await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step=report.step, data={"report_id": report.id})
    await _ask(update, context, report)


# ---------------------------------------------------------------- buttons


async def on_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    button = StepButton.parse(query.data or "")
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=context._user_id)
    if button is None or state is None or state.flow != FLOW:
        await answer_stale(query, t)
        return
    if button.step == "pick":
        if state.step != "pick":
            await answer_stale(query, t)
            return
        await _begin(update, context, int(button.value) if button.value.isdigit() else None)
        return
    report = await _current(update, context, state)
    if report is None:
        await answer_stale(query, t)
        return
    if button.step != report.step:
        await answer_stale(query, t)
        await _ask(update, context, report)
        return
    try:
        async with context.session() as session:
            fresh = await session.get(CompletionReport, report.id)
            if report.step == "status":
                fresh = await service.answer(session, report=fresh, step="status", value=button.value)
                label = t(service.REPORT_STATUS_LABELS[fresh.status])
            elif report.step == "progress":
                fresh = await service.answer(session, report=fresh, step="progress", value=int(button.value) if button.value.isdigit() else button.value)
                label = t.percent(fresh.progress / 100)
            elif report.step == "photos" and button.value == "done":
                label = t("Done ✔")
                fresh = await service.finish_photos(session, report=fresh)
            elif report.step == "confirm" and button.value == "restart":
                label = t("↺ Start again")
                fresh = await service.restart(session, report=fresh)
            elif report.step == "confirm" and button.value == "submit":
                await mark_answered(query, t("📤 Submit"))
                await _submit(update, context, fresh)
                return
            else:
                raise ReportProblem(N_("Please use the buttons below."))
    except ReportProblem as problem:
        await query.answer()
        await _ask(update, context, report, warning=problem.text(t))
        return
    await mark_answered(query, label)
    await _advance(update, context, fresh)


async def _submit(update: Update, context: ClusterContext, report: CompletionReport) -> None:
    t = context.t
    settings = context.settings
    async with context.session() as session:
        fresh = await session.get(CompletionReport, report.id)
        activity = await session.get(Activity, fresh.activity_id)
        cluster = await session.get(Cluster, activity.cluster_id)
        today = utcnow().astimezone(ZoneInfo(cluster.timezone)).date()
        await service.submit(
            session, report=fresh, actor_user_id=context._user_id, today=today,
            global_cdas=settings.cda_user_ids, default_language=settings.default_language,
        )
        await dialogs.clear_state(session, telegram_user_id=context._user_id)
    sender = context.deps.extra.get("sender")
    if sender is not None:
        sender.notify()
    await send(update, t("✅ Thank you! Your report is sent to the CDA."))


async def on_start_button(update: Update, context: ClusterContext) -> None:
    """The button of a weekly reminder: report on that activity straight away."""
    query = update.callback_query
    value = (query.data or "").split(":", 1)[-1]
    if context.stakeholder is None:
        await query.answer(_not_registered(context), show_alert=True)
        return
    await _begin(update, context, int(value) if value.isdigit() else None)


# ---------------------------------------------------------------- typed answers, photos, files


async def _still_picking(update: Update, context: ClusterContext, state) -> bool:
    """Text or a file while the activity list is shown: point at the buttons and show it again."""
    if state.step != "pick":
        return False
    await send(update, context.t("Please use the buttons below."))
    await report_command(update, context)
    return True


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    if await _still_picking(update, context, state):
        return
    report = await _current(update, context, state)
    if report is None:
        await send(update, t("I did not understand that. Send /help to see what you can do."))
        return
    text = update.effective_message.text
    if report.step not in ("progress", "done_text", "participants") or text is None:
        hint = t("Please send a photo, or press Done.") if report.step == "photos" else t("Please use the buttons below.")
        await _ask(update, context, report, warning=hint)
        return
    try:
        async with context.session() as session:
            fresh = await session.get(CompletionReport, report.id)
            fresh = await service.answer(session, report=fresh, step=report.step, value=text)
    except ReportProblem as problem:
        await _ask(update, context, report, warning=problem.text(t))
        return
    await _advance(update, context, fresh)


async def _add_photo(update: Update, context: ClusterContext, report: CompletionReport, file_id: str, *, document: bool) -> None:
    t = context.t
    try:
        async with context.session() as session:
            fresh = await session.get(CompletionReport, report.id)
            count = await service.add_photo(session, report=fresh, file_id=file_id)
            if document:
                # Sent as a file: it must go back out as a document, not as a photo.
                fresh.extra = {**(fresh.extra or {}), "documents": [*(fresh.extra or {}).get("documents", []), file_id]}
                session.add(fresh)
                await session.commit()
    except ReportProblem as problem:
        await _ask(update, context, report, warning=problem.text(t))
        return
    await _drop_previous(context, update.effective_chat.id, fresh)
    message = await send(
        update,
        t.ngettext("Photo {count} saved. Send more, or press Done.", "Photo {count} saved. Send more, or press Done.", count).format(count=t.number(count)),
        reply_markup=inline([[(t("Done ✔"), step_button(FLOW, "photos", "done"))]]),
    )
    async with context.session() as session:
        fresh = await session.get(CompletionReport, report.id)
        await service.set_message(session, report=fresh, message_id=message.message_id)


async def on_photo(update: Update, context: ClusterContext, state) -> None:
    if await _still_picking(update, context, state):
        return
    report = await _current(update, context, state)
    if report is None:
        await send(update, context.t("I did not understand that. Send /help to see what you can do."))
        return
    if report.step != "photos":
        await _ask(update, context, report, warning=context.t("Please answer with text or the buttons below."))
        return
    await _add_photo(update, context, report, update.effective_message.photo[-1].file_id, document=False)


async def on_document(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    if await _still_picking(update, context, state):
        return
    report = await _current(update, context, state)
    if report is None:
        await send(update, t("I did not understand that. Send /help to see what you can do."))
        return
    document = update.effective_message.document
    if report.step != "photos":
        await _ask(update, context, report, warning=t("Please answer with text or the buttons below."))
        return
    if not (document.mime_type or "").startswith("image/"):
        await _ask(update, context, report, warning=t("That file is not a photo. Please send photos only (pictures), or press Done."))
        return
    await _add_photo(update, context, report, document.file_id, document=True)


# ---------------------------------------------------------------- the CDA's and coordinator's buttons


async def _reviewable(update: Update, context: ClusterContext, action: str):
    query = update.callback_query
    value = (query.data or "").split(":", 1)[-1]
    async with context.session() as session:
        found = (
            await service.reviewable(
                session, report_id=int(value), cda_cluster_ids=context.cda_cluster_ids,
                coordinated_activity_ids=context.coordinated_activity_ids,
            )
            if value.isdigit() else None
        )
        if found is None:
            audit.record(session, actor_user_id=context._user_id, action="refused", subject=f"report:{value}"[:64], detail={"action": action})
            await session.commit()
    if found is None:
        await query.answer(context.t("Sorry, you cannot do that for this activity."), show_alert=True)
    return found


async def on_verify(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    found = await _reviewable(update, context, "verify")
    if found is None:
        return
    report, _ = found
    async with context.session() as session:
        fresh = await session.get(CompletionReport, report.id)
        verified = await service.verify(session, report=fresh, actor_user_id=context._user_id)
    if not verified:
        await query.answer(t("This report is already verified."))
        return
    sender = context.deps.extra.get("sender")
    if sender is not None:
        sender.notify()
    await query.answer(t("✔ Verified"))
    message = query.message
    if isinstance(message, Message):
        markup = service.review_markup(t, fresh)
        try:
            await message.edit_text(
                f"{message.text_html}\n\n✔ <b>{escape(t('Verified'))}</b>",
                reply_markup=inline([[(b["text"], b["callback_data"]) for b in markup["inline_keyboard"][0]]]) if markup else None,
            )
        except BadRequest:
            pass


async def on_photos(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    found = await _reviewable(update, context, "photos")
    if found is None:
        return
    report, _ = found
    photos = list(report.photo_file_ids or [])
    documents = set((report.extra or {}).get("documents", []))
    await query.answer()
    chat = update.effective_chat
    pictures = [InputMediaPhoto(file_id) for file_id in photos if file_id not in documents]
    if len(pictures) == 1:
        await chat.send_photo(pictures[0].media)
    elif pictures:
        await chat.send_media_group(pictures)
    for file_id in photos:
        if file_id in documents:
            await chat.send_document(file_id)
    if not photos:
        await send(update, t("This report has no photos."))


HANDLERS = [
    CommandHandler("report", report_command, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_button, pattern=rf"^{FLOW}:"),
    CallbackQueryHandler(on_start_button, pattern=rf"^{START_PREFIX}:"),
    CallbackQueryHandler(on_verify, pattern=rf"^{VERIFY_PREFIX}:"),
    CallbackQueryHandler(on_photos, pattern=rf"^{PHOTOS_PREFIX}:"),
]
