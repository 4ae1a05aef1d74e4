"""The respondent's side of surveys: /surveys, starting or resuming, answering each question.

Progress lives in survey_response (committed with every answer); dialog_state only says which
response typed messages belong to.
"""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any

from telegram import KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.context import ClusterContext
from bot.services import dialogs
from bot.services.surveys import engine
from bot.services.surveys import service as surveys
from bot.services.surveys.model import Question, SurveyDefinition, text_in
from bot.services.surveys.notices import START_PREFIX
from handlers.common import inline, send
from handlers.survey_render import (
    ANSWER_PREFIX,
    MEMBERS_PER_PAGE,
    answer_label,
    find_question,
    problem_text,
    question_markup,
    question_text,
)
from models import Stakeholder, Survey, SurveyLaunch, SurveyResponse
from models.base import utcnow

FLOW = "svy"


class Loaded:
    """A response with everything needed to render and answer it."""

    def __init__(self, response: SurveyResponse, launch: SurveyLaunch, survey: Survey) -> None:
        self.response, self.launch, self.survey = response, launch, survey
        self.definition: SurveyDefinition = surveys.definition_of(survey)

    @property
    def question(self) -> Question | None:
        return self.definition.question(self.response.current or "")


async def _load(session, context: ClusterContext, response_id: int) -> Loaded | None:
    response = await session.get(SurveyResponse, response_id)
    if response is None or not await surveys.owns(session, response=response, telegram_user_id=context._user_id):
        return None
    launch = await surveys.cached_row(session, SurveyLaunch, response.launch_id)
    survey = await surveys.cached_row(session, Survey, response.survey_id)
    return Loaded(response, launch, survey)


async def list_surveys(update: Update, context: ClusterContext) -> None:
    t = context.t
    stakeholder = context.stakeholder
    if stakeholder is None:
        await send(update, t("You are not registered yet. Please open the invite link your CDA shared with you."))
        return
    async with context.session() as session:
        found = await surveys.surveys_for(session, stakeholder=stakeholder)
    if not found:
        await send(update, t("There are no open surveys for you right now."))
        return
    lines, buttons = [t("Your surveys:")], []
    for item in found:
        definition = surveys.definition_of(item.survey)
        title = text_in(definition.title, t.language, definition.default_language)
        response = item.response
        if response is None:
            state = t("new")
        elif response.status == surveys.COMPLETED:
            state = t("done")
        else:
            k, n = engine.progress(definition, response.answers, response.current or "")
            state = t("{k} of {n}").format(k=t.number(k), n=t.number(n))
        closes = t.date(item.launch.closes_at, "medium")
        lines.append(t("• {title} — {state} (closes {date})").format(title=escape(title), state=state, date=closes))
        if response is None or response.status != surveys.COMPLETED:
            buttons.append(("▶ " + title, f"{START_PREFIX}:{item.launch.id}"))
    await send(update, "\n".join(lines), reply_markup=inline([b] for b in buttons) if buttons else None)


async def on_start_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    stakeholder = context.stakeholder
    try:
        launch_id = int((query.data or "").split(":")[1])
    except (IndexError, ValueError):
        launch_id = None
    async with context.session() as session:
        launch = await session.get(SurveyLaunch, launch_id) if launch_id else None
        allowed = (
            launch is not None
            and stakeholder is not None
            and await surveys.is_invited(session, launch_id=launch.id, stakeholder=stakeholder)
        )
        if not allowed:
            await query.answer(t("This survey is not open for you."), show_alert=True)
            return
        if not surveys.is_open(launch):
            await query.answer()
            await send(update, t("This survey is closed. Thank you for your interest."))
            return
        survey = await session.get(Survey, launch.survey_id)
        response, created = await surveys.start_or_resume(session, launch=launch, survey=survey, stakeholder=stakeholder)
        await dialogs.set_state(session, telegram_user_id=stakeholder.telegram_user_id, flow=FLOW, step="answer", data={"response_id": response.id})
    await query.answer()
    loaded = Loaded(response, launch, survey)
    if response.status == surveys.COMPLETED:
        await send(update, t("You have already answered this survey. Thank you!"))
        return
    if created:
        definition = loaded.definition
        title = text_in(definition.title, t.language, definition.default_language)
        intro = [f"<b>{escape(title)}</b>"]
        description = text_in(definition.description, t.language, definition.default_language)
        if description:
            intro.append(escape(description))
        if definition.anonymous:
            intro.append(t("This survey is anonymous: your answers are stored without your name."))
        intro.append(t("Every answer is saved at once. You can stop at any time and continue later with /surveys."))
        await send(update, "\n\n".join(intro))
    else:
        await send(update, t("Welcome back! We continue where you left off."))
    await show_question(update, context, loaded)


async def show_question(update: Update, context: ClusterContext, loaded: Loaded, *, warning: str | None = None) -> None:
    t = context.t
    question = loaded.question
    if question is None:
        return
    response = loaded.response
    text = question_text(t, loaded.definition, question, response.answers)
    if warning:
        text = f"⚠️ {escape(warning)}\n\n{text}"
    members, page, pages = None, 0, 1
    if question.type == "select_stakeholders":
        members, page, pages = await _member_page(context, loaded, 0)
    markup = question_markup(t, loaded.definition, question, response.id, response.answers, response.pending, members, page, pages)
    if response.message_id is not None:
        # The question is asked again below: the older copy keeps no live button.
        try:
            await context.bot.edit_message_reply_markup(chat_id=update.effective_chat.id, message_id=response.message_id, reply_markup=None)
        except BadRequest:
            pass
    message = await send(update, text, reply_markup=markup)
    async with context.session() as session:
        await surveys.set_message(session, response=response, message_id=message.message_id)
    if question.type == "geopoint":
        keyboard = ReplyKeyboardMarkup([[KeyboardButton(t("Share my location"), request_location=True)]], resize_keyboard=True, one_time_keyboard=True)
        await send(update, t("Press “Share my location” below."), reply_markup=keyboard)


async def _member_page(context: ClusterContext, loaded: Loaded, page: int, search: str | None = None):
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=context._user_id)
        search = search if search is not None else (state.data.get("search") if state else None)
        members, total = await surveys.cluster_members(
            session, cluster_id=loaded.launch.cluster_id, exclude=context.stakeholder.id if context.stakeholder else None,
            search=search, offset=page * MEMBERS_PER_PAGE, limit=MEMBERS_PER_PAGE,
        )
    pages = max(1, -(-total // MEMBERS_PER_PAGE))
    return [(m.id, _member_label(m)) for m in members], page, pages


def _member_label(member: Stakeholder) -> str:
    return f"{member.name} ({member.enterprise})" if member.enterprise else member.name


async def _mark_answered(context: ClusterContext, chat_id: int, loaded: Loaded, question: Question, label: str) -> None:
    """Edit the question message to show the chosen answer, with no button left live."""
    message_id = loaded.response.message_id
    if message_id is None:
        return
    text = question_text(context.t, loaded.definition, question, loaded.response.answers)
    try:
        await context.bot.edit_message_text(f"{text}\n\n✓ <b>{escape(label)}</b>", chat_id=chat_id, message_id=message_id, reply_markup=None)
    except BadRequest:
        pass  # too old to edit, or already shows it; the answer is saved either way


async def _record(session, context: ClusterContext, loaded: Loaded, raw: Any) -> surveys.AnswerOutcome:
    # The row loaded for this update is current: this user's updates run one at a time.
    return await surveys.record_answer(
        session, response=loaded.response, definition=loaded.definition, raw=raw,
        cluster_id=loaded.launch.cluster_id, today=utcnow().astimezone(context.t.zone).date(),
    )


async def _submit(update: Update, context: ClusterContext, loaded: Loaded, raw: Any) -> None:
    if not surveys.is_open(loaded.launch):
        await _closed(update, context)
        return
    question = loaded.question
    async with context.session() as session:
        outcome = await _record(session, context, loaded, raw)
    await _respond(update, context, loaded, question, outcome)


async def _respond(update: Update, context: ClusterContext, loaded: Loaded, question: Question, outcome) -> None:
    """Tell the user how their answer went: the question again with the problem, or the next one."""
    t = context.t
    if not outcome.accepted:
        await show_question(update, context, loaded, warning=problem_text(t, loaded.definition, outcome.problem))
        return
    names = await _names(context, outcome.value) if question.type == "select_stakeholders" else None
    await _mark_answered(context, update.effective_chat.id, loaded, question, answer_label(t, loaded.definition, question, outcome.value, names))
    if outcome.completed:
        async with context.session() as session:
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
        await send(update, t("✅ Thank you! All your answers are saved."), reply_markup=ReplyKeyboardRemove())
        return
    # The answered question no longer has buttons; nothing to clean up before the next one.
    loaded.response.message_id = None
    if question.type == "geopoint":
        await send(update, t("Location received"), reply_markup=ReplyKeyboardRemove())
    await show_question(update, context, loaded)


async def _names(context: ClusterContext, ids: list[int] | None) -> dict[int, str]:
    if not ids:
        return {}
    async with context.session() as session:
        return {i: _member_label(s) for i in ids if (s := await session.get(Stakeholder, i)) is not None}


async def _closed(update: Update, context: ClusterContext) -> None:
    async with context.session() as session:
        await dialogs.clear_state(session, telegram_user_id=context._user_id)
    await send(update, context.t("This survey is closed. Thank you for your interest."), reply_markup=ReplyKeyboardRemove())


NOT_AN_ANSWER = object()


def _button_answer(action: str, loaded: Loaded, question: Question, t) -> Any:
    """The answer a button press gives, or NOT_AN_ANSWER for Back, paging and toggles."""
    if action == "skip":
        return None
    if action == "ok":
        return "OK"
    if action in ("today", "yday"):
        return utcnow().astimezone(t.zone).date() - timedelta(days=1 if action == "yday" else 0)
    if action.startswith("r"):
        return action[1:]
    if action == "done":
        return list(loaded.response.pending)
    if question.type == "select_one" and action.startswith("c") and action[1:].isdigit():
        index = int(action[1:])
        if index < len(question.choices):
            return question.choices[index].name
    return NOT_AN_ANSWER


async def on_answer_button(update: Update, context: ClusterContext) -> None:
    t = context.t
    query = update.callback_query
    parts = (query.data or "").split(":", 3)
    try:
        response_id, key, action = int(parts[1]), parts[2], parts[3]
    except (IndexError, ValueError):
        await query.answer(t("This question is no longer open."))
        return
    outcome = None
    # One session reads the response and commits the answer: the common press costs one read
    # and one write.
    async with context.session() as session:
        loaded = await _load(session, context, response_id)
        question = loaded.question if loaded else None
        verdict = _verdict(loaded, key)
        if verdict is None:
            await _follow(session, context, response_id)
            raw = _button_answer(action, loaded, question, t)
            if raw is not NOT_AN_ANSWER:
                outcome = await _record(session, context, loaded, raw)
    if verdict == "gone":
        await query.answer(t("This question is no longer open."))
    elif verdict == "done":
        await query.answer(t("You have already answered this survey. Thank you!"))
    elif verdict == "stale":
        await query.answer(t("This question is no longer open."))
        await show_question(update, context, loaded)
    elif verdict == "closed":
        await query.answer()
        await _closed(update, context)
    else:
        await query.answer()
        if outcome is not None:
            await _respond(update, context, loaded, question, outcome)
        else:
            await _act(update, context, loaded, question, action, query.message)


def _verdict(loaded: Loaded | None, key: str) -> str | None:
    """Why a press on a question's button cannot be taken, or None when it can."""
    if loaded is None:
        return "gone"
    if loaded.response.status == surveys.COMPLETED:
        return "done"
    question = loaded.question
    if question is None or find_question(loaded.definition, key) is not question:
        return "stale"
    if not surveys.is_open(loaded.launch):
        return "closed"
    return None


async def _follow(session, context: ClusterContext, response_id: int) -> None:
    """Typed answers must reach this survey even if the user had left it for another flow."""
    state = context.dialog_state
    if state is None or state.flow != FLOW or state.data.get("response_id") != response_id:
        context.dialog_state = await dialogs.set_state(
            session, telegram_user_id=context._user_id, flow=FLOW, step="answer", data={"response_id": response_id}
        )


async def _act(update: Update, context: ClusterContext, loaded: Loaded, question: Question, action: str, message) -> None:
    t = context.t
    response = loaded.response
    if action == "back":
        async with context.session() as session:
            fresh = await session.get(SurveyResponse, response.id)
            moved = await surveys.go_back(session, response=fresh, definition=loaded.definition)
        if moved:
            await _mark_answered(context, update.effective_chat.id, loaded, question, t("◀ Back"))
            loaded.response = fresh
        await show_question(update, context, loaded)
        return
    if action.startswith("pg") and question.type == "select_stakeholders":
        await _refresh_members(context, loaded, question, message, int(action[2:]) if action[2:].isdigit() else 0)
        return
    if action.startswith("p") and question.type == "select_stakeholders" and action[1:].isdigit():
        member = int(action[1:])
        pending = [m for m in response.pending if m != member] if member in response.pending else [*response.pending, member]
        async with context.session() as session:
            fresh = await session.get(SurveyResponse, response.id)
            await surveys.set_pending(session, response=fresh, pending=pending)
        loaded.response = fresh
        async with context.session() as session:
            state = await dialogs.get_state(session, telegram_user_id=context._user_id)
        await _refresh_members(context, loaded, question, message, (state.data.get("page", 0) if state else 0))
        return
    if action.startswith("c") and action[1:].isdigit() and int(action[1:]) < len(question.choices):
        choice = question.choices[int(action[1:])]
        if question.type == "select_multiple":
            pending = [c for c in response.pending if c != choice.name] if choice.name in response.pending else [*response.pending, choice.name]
            async with context.session() as session:
                fresh = await session.get(SurveyResponse, response.id)
                await surveys.set_pending(session, response=fresh, pending=pending)
            loaded.response = fresh
            markup = question_markup(t, loaded.definition, question, fresh.id, fresh.answers, fresh.pending)
            await _edit_markup(message, markup)
            return
    await show_question(update, context, loaded, warning=t("Please choose one of the buttons."))


async def _edit_markup(message, markup) -> None:
    if isinstance(message, Message):
        try:
            await message.edit_reply_markup(reply_markup=markup)
        except BadRequest:
            pass


async def _refresh_members(context: ClusterContext, loaded: Loaded, question: Question, message, page: int) -> None:
    members, page, pages = await _member_page(context, loaded, page)
    async with context.session() as session:
        state = await dialogs.get_state(session, telegram_user_id=context._user_id)
        data = {**(state.data if state else {}), "response_id": loaded.response.id, "page": page}
        await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step="answer", data=data)
    markup = question_markup(context.t, loaded.definition, question, loaded.response.id, loaded.response.answers,
                             loaded.response.pending, members, page, pages)
    await _edit_markup(message, markup)


async def _current(update: Update, context: ClusterContext, state) -> Loaded | None:
    async with context.session() as session:
        loaded = await _load(session, context, int(state.data.get("response_id", 0)))
    if loaded is None or loaded.question is None:
        async with context.session() as session:
            await dialogs.clear_state(session, telegram_user_id=context._user_id)
        await send(update, context.t("I did not understand that. Send /help to see what you can do."))
        return None
    return loaded


TYPED = ("integer", "decimal", "text", "date")


async def on_text(update: Update, context: ClusterContext, state) -> None:
    t = context.t
    loaded = await _current(update, context, state)
    if loaded is None:
        return
    question = loaded.question
    text = update.effective_message.text
    if text is None and question.type != "image":
        await show_question(update, context, loaded, warning=t("Please answer with text or the buttons below."))
    elif question.type in TYPED:
        await _submit(update, context, loaded, text)
    elif question.type == "select_stakeholders":
        async with context.session() as session:
            await dialogs.set_state(session, telegram_user_id=context._user_id, flow=FLOW, step="answer",
                                    data={"response_id": loaded.response.id, "search": text.strip()[:50], "page": 0})
        members, page, pages = await _member_page(context, loaded, 0, text.strip()[:50])
        if not members:
            await show_question(update, context, loaded, warning=t("Nobody found with that name. Try a shorter part of the name."))
            return
        await show_question(update, context, loaded)
    elif question.type == "image":
        await show_question(update, context, loaded, warning=t("Please send a photo."))
    elif question.type == "geopoint":
        await show_question(update, context, loaded, warning=t("Please share a location with the button."))
    else:
        await show_question(update, context, loaded, warning=t("Please use the buttons below."))


async def on_photo(update: Update, context: ClusterContext, state) -> None:
    loaded = await _current(update, context, state)
    if loaded is None:
        return
    if loaded.question.type != "image":
        await show_question(update, context, loaded, warning=context.t("Please use the buttons below."))
        return
    photo = update.effective_message.photo[-1]
    await _submit(update, context, loaded, photo.file_id)


async def on_location(update: Update, context: ClusterContext, state) -> None:
    loaded = await _current(update, context, state)
    if loaded is None:
        return
    if loaded.question.type != "geopoint":
        await show_question(update, context, loaded, warning=context.t("Please use the buttons below."))
        return
    location = update.effective_message.location
    await _submit(update, context, loaded, (location.latitude, location.longitude))


HANDLERS = [
    CommandHandler("surveys", list_surveys, filters=filters.ChatType.PRIVATE),
    CallbackQueryHandler(on_start_button, pattern=rf"^{START_PREFIX}:"),
    CallbackQueryHandler(on_answer_button, pattern=rf"^{ANSWER_PREFIX}:"),
]
