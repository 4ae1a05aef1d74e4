"""Meetings end to end: the CDA's /meeting dialog (Tamil, Hindi), notices in each invitee's
language, RSVPs and the live tally, calendar files, reminders as rows (idempotent, restart-safe),
rescheduling and cancelling, and who may do what."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.i18n import Translator
from bot.services import ics
from bot.services import meetings as svc
from bot.services.clusters import add_cda
from handlers import meeting as meeting_handlers
from models import (
    Activity,
    ActivityPerson,
    AuditEntry,
    Meeting,
    MeetingInvite,
    MeetingReminder,
    OutboxMessage,
)
from models.base import as_utc, utcnow
from tests.chat import ChatUser
from tests.conftest import CDA_ID, start_app, stop_app
from tests.helpers import make_cluster, tr
from tests.survey_helpers import add_member

ASHA, MURUGAN, JOHN, RANI = 6_100_001, 6_100_002, 6_100_003, 6_100_004
OTHER_CDA = 900_000_077
ZONE = ZoneInfo("Asia/Kolkata")
REFUSED = "Sorry, only the CDA of a cluster can use this command."


async def setup_cluster(sessionmaker):
    cluster = await make_cluster(sessionmaker)
    await add_member(sessionmaker, cluster, ASHA, "आशा देवी", "hi", enterprise="आशा ब्रास")
    await add_member(sessionmaker, cluster, MURUGAN, "முருகன்", "ta")
    await add_member(sessionmaker, cluster, JOHN, "John Mathew", "en", role="bank")
    return cluster


def plural(lang: str, singular: str, plural_: str, count: int) -> str:
    t = Translator(lang)
    return t.ngettext(singular, plural_, count).format(count=t.number(count))


def local_day(days: int):
    return utcnow().astimezone(ZONE).date() + timedelta(days=days)


def in_script(text: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(c)) if c.isdigit() else c for c in text)


def utc_at(day, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), ZONE).astimezone(UTC)


async def rows(sessionmaker, model, *where):
    async with sessionmaker() as session:
        return list((await session.exec(select(model).where(*where).order_by(model.id))).all())


async def only_meeting(sessionmaker) -> Meeting:
    [meeting] = await rows(sessionmaker, Meeting)
    return meeting


def notices_to(api, chat_id: int) -> list[dict]:
    return [m for (chat, _), m in api.messages.items() if chat == chat_id and "callback_data" in str(m.get("reply_markup"))]


def calendar_of(api, chat_id: int) -> tuple[str, dict[str, list[str]], bytes]:
    """The last .ics sent to a chat: file name, properties (unfolded, by name) and raw bytes."""
    call = api.sent(chat_id, "sendDocument")[-1]
    name, raw = call.files["document"]
    return name, parse_ics(raw), raw


def parse_ics(raw: bytes) -> dict[str, list[str]]:
    """A small independent reader: check the line lengths, unfold, then file each content line
    under its name with the rest (";params:value") as it is."""
    text = raw.decode()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    properties: dict[str, list[str]] = {}
    for line in text.replace("\r\n ", "").split("\r\n")[:-1]:
        name = re.match(r"[A-Z-]+", line).group()
        properties.setdefault(name, []).append(line[len(name) :])
    return properties


def prop(properties: dict[str, list[str]], name: str) -> str:
    """The value of a property without parameters (":value")."""
    [value] = properties[name]
    return value[1:] if value.startswith(":") else value


async def call_meeting(cda: ChatUser, lang: str, *, title: str, when: str, venue: str, agenda: str,
                       location=None, audience: str = "Everyone in the cluster") -> None:
    await cda.send("/meeting")
    await cda.click(tr(lang, "➕ Call a new meeting"))
    await cda.send(title)
    await cda.send(when)
    await cda.send(venue)
    if location is None:
        await cda.send(tr(lang, "Skip"))
    else:
        await cda._process(cda.api.make_message(cda.user_id, None, location=location))
    await cda.send(agenda)
    await cda.click(tr(lang, audience))


# ---------------------------------------------------------------- the journey


async def test_tamil_cda_calls_a_meeting_and_invitees_answer_in_their_languages(app, api, sessionmaker, monkeypatch):
    monkeypatch.setattr(meeting_handlers, "TALLY_INTERVAL", 0)
    await setup_cluster(sessionmaker)
    cda = ChatUser(app, api, CDA_ID, language_code="ta")
    await cda.send("/meeting")
    assert cda.last_text() == tr("ta", "There is no upcoming meeting. Call a new one?")
    await cda.click(tr("ta", "➕ Call a new meeting"))
    assert cda.last_text() == tr("ta", "What is the meeting called? Write a short title.")
    await cda.send("x" * 201)
    assert tr("ta", "Please keep it under {limit} characters.", limit=200) in cda.texts()[0]
    assert cda.last_text() == tr("ta", "What is the meeting called? Write a short title.")
    await cda.send("Common facility centre; next steps")

    day = local_day(3)
    await cda.send("tomorrow evening")
    assert tr("ta", "Please write the date and time as day/month/year hours:minutes, for example {example}.",
              example=svc.example_time("Asia/Kolkata")) in cda.texts()[0]
    await cda.send("01/01/2020 10:00")
    assert cda.texts()[0] == tr("ta", "That time has already passed. Please give a time in the future.")
    # Typed in Tamil digits: ௨௫/௧௨/௨௦௨௬ ௧௭:௩௦
    await cda.send(in_script(f"{day:%d/%m/%Y} 17:30", "\u0be6"))
    assert cda.last_text().startswith(tr("ta", "Where will it be held? Write the place, for example: Association hall, Civil Lines."))
    await cda.send("Association hall, Civil Lines")
    assert tr("ta", "📍 Share location") in cda.reply_keyboard()
    await cda.send("near the temple")
    assert cda.texts()[0] == tr("ta", "Please share a location with the button, or press Skip.")
    await cda._process(api.make_message(CDA_ID, None, location=(28.8386, 78.7733), language_code="ta"))
    assert cda.last_text() == tr("ta", "What is the agenda? Write the points to discuss.")
    await cda.send("1. Common facility centre\n2. Bank loans, subsidy")
    assert cda.last_text() == tr("ta", "Who should be invited?")
    await cda.click(tr("ta", "Everyone in the cluster"))
    preview = cda.last_text()
    assert tr("ta", "Each person gets this notice in their own language, with Yes / No / Maybe buttons and a calendar file:") in preview
    assert "Common facility centre; next steps" in preview and "Bank loans, subsidy" in preview
    await cda.click(tr("ta", "📤 Send"))

    meeting = await only_meeting(sessionmaker)
    assert as_utc(meeting.starts_at) == utc_at(day, 17, 30)
    assert (meeting.latitude, meeting.longitude, meeting.revision) == (28.8386, 78.7733, 1)
    invites = await rows(sessionmaker, MeetingInvite, MeetingInvite.meeting_id == meeting.id)
    assert len(invites) == 3 and all(invite.response is None for invite in invites)
    reminders = await rows(sessionmaker, MeetingReminder, MeetingReminder.meeting_id == meeting.id)
    assert {(r.kind, as_utc(r.due_at)) for r in reminders} == {
        ("24h", utc_at(day, 17, 30) - timedelta(hours=24)), ("2h", utc_at(day, 17, 30) - timedelta(hours=2))}
    queued = await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_invite")
    assert sorted(m.dedupe_key for m in queued) == sorted(
        key for i in invites for key in (f"meeting_invite:{meeting.id}:{i.stakeholder_id}", f"meeting_invite:{meeting.id}:{i.stakeholder_id}:ics")
    )
    # Each notice is followed by the calendar file, carried by the outbox row itself.
    assert all((m.attachment is not None) == m.dedupe_key.endswith(":ics") for m in queued)
    # The CDA got their own calendar file and the tally, in Tamil.
    name, properties, _ = calendar_of(api, CDA_ID)
    assert name == f"meeting-{meeting.id}.ics" and prop(properties, "METHOD") == "REQUEST"
    assert tr("ta", "Invited: {count}", count="3") in cda.last_text()

    await app.deps.extra["sender"].drain()
    hindi = Translator("hi", "Asia/Kolkata")
    [notice] = notices_to(api, ASHA)
    assert tr("hi", "📅 <b>Meeting: {title}</b>", title="Common facility centre; next steps").split("<b>")[0] in notice["text"]
    assert hindi.date(meeting.starts_at, "full") in notice["text"]
    assert tr("hi", "Will you come? Please answer with a button below.") in notice["text"]
    assert "maps.google.com/?q=28.838600,78.773300" in notice["text"]
    [english] = notices_to(api, JOHN)
    assert "Will you come? Please answer with a button below." in english["text"]
    name, properties, _ = calendar_of(api, ASHA)
    assert name == f"meeting-{meeting.id}.ics" and prop(properties, "METHOD") == "REQUEST"

    asha, murugan, john = (ChatUser(app, api, uid) for uid in (ASHA, MURUGAN, JOHN))
    await asha.click(tr("hi", "✅ Yes"))
    assert asha.alerts() == [tr("hi", "Thank you! Your answer is saved: {answer}", answer=tr("hi", "✅ Yes"))]
    assert tr("hi", "Your answer: {answer}. You can change it with the buttons below.", answer=tr("hi", "✅ Yes")) in notices_to(api, ASHA)[0]["text"]
    assert tr("hi", "🤔 Maybe") in asha.buttons()  # the answer can still be changed
    await murugan.click(tr("ta", "🤔 Maybe"))
    await john.click("❌ No")
    await john.click("✅ Yes")  # changed his mind
    answers = {i.stakeholder_id: i.response for i in await rows(sessionmaker, MeetingInvite)}
    assert sorted(answers.values()) == ["maybe", "yes", "yes"]

    tally = api.messages[next(k for k, m in api.messages.items() if k[0] == CDA_ID and "📊" in (m.get("text") or ""))]["text"]
    assert f"{tr('ta', '✅ Yes')}: 2" in tally and f"{tr('ta', '🤔 Maybe')}: 1" in tally and f"{tr('ta', '❌ No')}: 0" in tally
    assert tr("ta", "⏳ No answer yet: {count}", count="0") in tally and "आशा देवी" in tally and "John Mathew" in tally
    async with sessionmaker() as session:
        assert await svc.rsvp_tally(session, meeting_id=meeting.id) == {"yes": 2, "no": 0, "maybe": 1, "pending": 0, "invited": 3}

    await asha.click(tr("hi", "📅 Add to calendar"))
    name, properties, raw = calendar_of(api, ASHA)
    assert name == f"meeting-{meeting.id}.ics"
    assert prop(properties, "DTSTART") == utc_at(day, 17, 30).strftime("%Y%m%dT%H%M%SZ")
    assert prop(properties, "DTEND") == (utc_at(day, 17, 30) + timedelta(minutes=120)).strftime("%Y%m%dT%H%M%SZ")
    assert prop(properties, "SEQUENCE") == "1" and prop(properties, "STATUS") == "CONFIRMED"
    assert prop(properties, "SUMMARY") == "Common facility centre\\; next steps"
    assert prop(properties, "LOCATION") == "Association hall\\, Civil Lines"
    assert prop(properties, "GEO") == "28.838600;78.773300"
    assert prop(properties, "DESCRIPTION") == "1. Common facility centre\\n2. Bank loans\\, subsidy"
    assert prop(properties, "UID") == ics.meeting_uid(meeting)
    assert "PARTSTAT=ACCEPTED" in properties["ATTENDEE"][0] and "आशा देवी" in properties["ATTENDEE"][0]
    assert b"BEGIN:VEVENT" in raw and prop(properties, "DTSTAMP").endswith("Z")


async def test_tally_edits_are_throttled_and_the_last_answer_shows(app, api, sessionmaker, monkeypatch):
    monkeypatch.setattr(meeting_handlers, "TALLY_INTERVAL", 0.3)
    await setup_cluster(sessionmaker)
    cda = ChatUser(app, api, CDA_ID, language_code="en")
    await call_meeting(cda, "en", title="Trust meeting", when=f"{local_day(5):%d/%m/%Y} 10:00", venue="DIC office", agenda="Introductions")
    await cda.click("📤 Send")
    await app.deps.extra["sender"].drain()
    tally_key = next(k for k, m in api.messages.items() if k[0] == CDA_ID and "📊" in (m.get("text") or ""))
    edits = lambda: [c for c in api.calls if c.method == "editMessageText" and c.params.get("message_id") == tally_key[1]]  # noqa: E731
    for uid, label in ((ASHA, tr("hi", "✅ Yes")), (MURUGAN, tr("ta", "✅ Yes")), (JOHN, "❌ No")):
        await ChatUser(app, api, uid).click(label)
    assert len(edits()) == 1  # the first answer at once; the next two wait for one deferred edit
    await app.deps.extra["meeting_tallies"].settle()
    assert len(edits()) == 2
    text = api.messages[tally_key]["text"]
    assert "✅ Yes: 2" in text and "❌ No: 1" in text and "⏳ No answer yet: 0" in text
    # The 🔄 button redraws it on demand.
    await cda.click("🔄 Refresh")
    assert cda.alerts() == [""] and "✅ Yes: 2" in api.messages[tally_key]["text"]


async def test_restart_mid_dialog_continues_and_old_buttons_are_stale(settings, api, sessionmaker):
    await setup_cluster(sessionmaker)
    first = await start_app(settings, api)
    cda = ChatUser(first, api, CDA_ID, language_code="hi")
    await cda.send("/meeting")
    menu_message, menu_data = cda.find_button(tr("hi", "➕ Call a new meeting"))
    await cda.click(tr("hi", "➕ Call a new meeting"))
    await cda.send("निर्यात पर बैठक")
    await cda.send(in_script(f"{local_day(10):%d/%m/%Y} 5:30 pm", "\u0966"))  # Devanagari digits, 12-hour clock
    await stop_app(first)

    second = await start_app(settings, api)
    cda = ChatUser(second, api, CDA_ID, language_code="hi")
    await cda.send("/meeting")
    assert cda.texts()[0] == tr("hi", "You are calling the meeting “{title}”. We continue where you left off; send /cancel to drop it.", title="निर्यात पर बैठक")
    await cda.press(menu_data, menu_message)
    assert cda.alerts()[0] == tr("hi", "This question is no longer open.")
    assert cda.last_text() == tr("hi", "Where will it be held? Write the place, for example: Association hall, Civil Lines.")
    await cda.send("संघ भवन")
    await cda.send(tr("hi", "Skip"))
    await cda.send("निर्यात के अवसर")
    await cda.click(tr("hi", "One language"))
    await cda.click("தமிழ்")
    assert tr("hi", "To: {audience} ({count})", audience="தமிழ்", count=plural("hi", "{count} person", "{count} people", 1)) in cda.last_text()
    await cda.click(tr("hi", "📤 Send"))
    meeting = await only_meeting(sessionmaker)
    assert meeting.title == "निर्यात पर बैठक" and meeting.venue == "संघ भवन" and meeting.latitude is None
    assert as_utc(meeting.starts_at) == utc_at(local_day(10), 17, 30)
    assert meeting.audience == {"kind": "language", "value": "ta"}
    [invite] = await rows(sessionmaker, MeetingInvite)
    assert invite.stakeholder_id == (await stakeholder_id(sessionmaker, MURUGAN))
    await stop_app(second)


async def stakeholder_id(sessionmaker, user_id: int) -> int:
    from tests.helpers import stakeholder_of

    return (await stakeholder_of(sessionmaker, user_id)).id


async def test_activity_audience_links_the_meeting_and_empty_audiences_are_refused(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    async with sessionmaker() as session:
        activity = Activity(cluster_id=cluster.id, year=2026, title={"en": "Export training", "hi": "निर्यात प्रशिक्षण"})
        session.add(activity)
        await session.flush()
        for uid in (ASHA, JOHN):
            session.add(ActivityPerson(activity_id=activity.id, stakeholder_id=await stakeholder_id(sessionmaker, uid), role="participant"))
        await session.commit()
        activity_id = activity.id
    cda = ChatUser(app, api, CDA_ID, language_code="en")
    await call_meeting(cda, "en", title="Training briefing", when=f"{local_day(4):%d/%m/%Y} 11:00", venue="ITI",
                       agenda="Schedule", audience="One role")
    await cda.click("Local government")
    assert cda.texts()[-2] == "No one is in this audience yet. Please choose another."
    assert cda.last_text() == "Who should be invited?"
    await cda.click("The people of one activity")
    await cda.click("Export training")
    assert "To: The people of: Export training (2 people)" in cda.last_text()
    assert "Activity: Export training" in cda.last_text()
    await cda.click("📤 Send")
    meeting = await only_meeting(sessionmaker)
    assert meeting.activity_id == activity_id
    invited = {i.stakeholder_id for i in await rows(sessionmaker, MeetingInvite)}
    assert invited == {await stakeholder_id(sessionmaker, ASHA), await stakeholder_id(sessionmaker, JOHN)}
    async with sessionmaker() as session:
        assert [m.id for m in await svc.meetings_of_activity(session, activity_id=activity_id)] == [meeting.id]
        assert (await svc.rsvp_tally(session, meeting_id=meeting.id))["pending"] == 2

    # Everyone as audience, then linked to the activity by the extra question.
    await call_meeting(cda, "en", title="Review", when=f"{local_day(6):%d/%m/%Y} 11:00", venue="ITI", agenda="Review")
    assert cda.last_text() == "Is this meeting part of an activity of the action plan?"
    await cda.click("Export training")
    await cda.click("📤 Send")
    async with sessionmaker() as session:
        assert len(await svc.meetings_of_activity(session, activity_id=activity_id)) == 2


async def test_a_cda_of_two_clusters_picks_one_and_times_are_that_clusters(app, api, sessionmaker):
    await make_cluster(sessionmaker, name="Moradabad Brassware")
    gulf = await make_cluster(sessionmaker, name="Gulf Traders", timezone="Asia/Dubai")
    await add_member(sessionmaker, gulf, RANI, "Rani", "en")
    cda = ChatUser(app, api, CDA_ID, language_code="en")
    await cda.send("/meeting")
    await cda.click("➕ Call a new meeting")
    assert cda.last_text() == "Which cluster?"
    menu = cda.bot_messages()[-1]
    await cda.press("mtg:cluster:999999", menu)  # no such cluster
    assert cda.alerts() == [REFUSED]
    await cda.click("Gulf Traders")
    await cda.send("Buyers' meet")
    day = local_day(2)
    await cda.send(f"{day:%d/%m/%Y} 17:30")
    await cda.send("Souk hall")
    await cda.send("Skip")
    await cda.send("Orders")
    await cda.click("Everyone in the cluster")
    assert "Cluster: Gulf Traders" in cda.last_text()
    await cda.click("📤 Send")
    meeting = await only_meeting(sessionmaker)
    assert meeting.cluster_id == gulf.id
    assert as_utc(meeting.starts_at) == datetime.combine(day, time(17, 30), ZoneInfo("Asia/Dubai")).astimezone(UTC)
    await app.deps.extra["sender"].drain()
    [notice] = notices_to(api, RANI)
    assert "at 5:30" in notice["text"]  # shown in the cluster's time, not the bot's default


# ---------------------------------------------------------------- reminders


async def make_meeting(sessionmaker, cluster, *, starts_in: timedelta, title: str = "Quarterly review") -> Meeting:
    async with sessionmaker() as session:
        meeting, _ = await svc.create_meeting(
            session, cluster=cluster, title=title, starts_at=utcnow() + starts_in, venue="Hall",
            agenda="Review", audience=svc.Audience("all"), created_by=CDA_ID,
        )
    return meeting


async def answer(sessionmaker, meeting: Meeting, user_id: int, response: str) -> None:
    async with sessionmaker() as session:
        invite = (await session.exec(select(MeetingInvite).where(
            MeetingInvite.meeting_id == meeting.id, MeetingInvite.stakeholder_id == await stakeholder_id(sessionmaker, user_id)))).one()
        await svc.record_rsvp(session, invite_id=invite.id, stakeholder_id=invite.stakeholder_id, response=response, actor_user_id=user_id)


def reminders_to(api, chat_id: int) -> list[str]:
    return [c.params["text"] for c in api.sent(chat_id, "sendMessage") if "⏰" in c.params["text"]]


async def test_reminders_go_to_yes_and_maybe_once_across_restarts(settings, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    await add_member(sessionmaker, cluster, RANI, "Rani", "bn")
    now = utcnow()
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(hours=30))
    await answer(sessionmaker, meeting, ASHA, "yes")
    await answer(sessionmaker, meeting, MURUGAN, "maybe")
    await answer(sessionmaker, meeting, JOHN, "no")  # RANI does not answer

    first = await start_app(settings, api)
    second = await start_app(settings, api)
    assert await svc.queue_due_reminders(first.deps.sessionmaker, now=now + timedelta(hours=1)) == 0
    # The 24-hour reminder is due at +6h; two processes run the job at +7h at the same moment:
    # Yes and Maybe get it, from one of them.
    at_seven = now + timedelta(hours=7)
    results = await asyncio.gather(
        svc.queue_due_reminders(first.deps.sessionmaker, now=at_seven),
        svc.queue_due_reminders(second.deps.sessionmaker, now=at_seven),
    )
    assert sorted(results) == [0, 2]
    assert await svc.queue_due_reminders(first.deps.sessionmaker, now=now + timedelta(hours=7, minutes=1)) == 0
    await first.deps.extra["sender"].drain()
    await stop_app(first)

    # After a restart, the other process finds nothing left of the 24-hour reminder.
    assert await svc.queue_due_reminders(second.deps.sessionmaker, now=now + timedelta(hours=8)) == 0
    await stop_app(second)

    # The bot is down across the 2-hour reminder (+28h); it starts again at +29h and sends it once.
    third = await start_app(settings, api)
    assert await svc.queue_due_reminders(third.deps.sessionmaker, now=now + timedelta(hours=29)) == 2
    assert await svc.queue_due_reminders(third.deps.sessionmaker, now=now + timedelta(hours=29)) == 0
    await third.deps.extra["sender"].drain()
    await stop_app(third)

    fourth = await start_app(settings, api)
    assert await svc.queue_due_reminders(fourth.deps.sessionmaker, now=now + timedelta(hours=29, minutes=30)) == 0
    await fourth.deps.extra["sender"].drain()
    await stop_app(fourth)

    assert len(reminders_to(api, ASHA)) == 2 and len(reminders_to(api, MURUGAN)) == 2
    assert reminders_to(api, JOHN) == [] and reminders_to(api, RANI) == []
    assert tr("hi", "⏰ <b>Reminder: {title}</b>", title="Quarterly review") in reminders_to(api, ASHA)[0]
    assert tr("ta", "Your answer so far: {answer}. Press a button to change it.", answer=tr("ta", "🤔 Maybe")) in reminders_to(api, MURUGAN)[0]
    keys = sorted(m.dedupe_key for m in await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_reminder"))
    asha_id = await stakeholder_id(sessionmaker, ASHA)
    assert f"meeting_reminder:{meeting.id}:1:24h:{asha_id}" in keys and f"meeting_reminder:{meeting.id}:1:2h:{asha_id}" in keys
    assert all(r.done_at is not None for r in await rows(sessionmaker, MeetingReminder))


async def test_reminder_of_a_started_meeting_is_closed_without_sending(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    now = utcnow()
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(hours=3))
    await answer(sessionmaker, meeting, ASHA, "yes")
    [reminder] = await rows(sessionmaker, MeetingReminder)
    assert reminder.kind == "2h"  # a meeting three hours away has no 24-hour reminder
    # The bot was down from before +1h until after the meeting began.
    assert await svc.queue_due_reminders(app.deps.sessionmaker, now=now + timedelta(hours=3, minutes=5)) == 0
    [reminder] = await rows(sessionmaker, MeetingReminder)
    assert reminder.done_at is not None
    assert await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_reminder") == []


async def test_when_both_reminders_were_missed_only_the_later_is_sent(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    now = utcnow()
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(hours=30))
    await answer(sessionmaker, meeting, ASHA, "yes")
    assert await svc.queue_due_reminders(app.deps.sessionmaker, now=now + timedelta(hours=29)) == 1
    [message] = await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_reminder")
    assert message.dedupe_key.endswith(f":1:2h:{await stakeholder_id(sessionmaker, ASHA)}")
    assert all(r.done_at is not None for r in await rows(sessionmaker, MeetingReminder))


# ---------------------------------------------------------------- reschedule and cancel


async def test_reschedule_then_cancel_notify_the_invitees(app, api, sessionmaker):
    await setup_cluster(sessionmaker)
    cda = ChatUser(app, api, CDA_ID, language_code="hi")
    first_day = local_day(3)
    await call_meeting(cda, "hi", title="Joint marketing", when=f"{first_day:%d/%m/%Y} 10:00", venue="Hall", agenda="Stalls")
    await cda.click(tr("hi", "📤 Send"))
    await app.deps.extra["sender"].drain()
    meeting = await only_meeting(sessionmaker)
    asha = ChatUser(app, api, ASHA)
    await asha.click(tr("hi", "✅ Yes"))

    await cda.send("/meeting")
    await cda.click("Joint marketing")
    assert tr("hi", "Invited: {count}", count="3") in cda.texts()[1]
    await cda.click(tr("hi", "🕑 Move to another time"))
    await cda.send(f"{first_day:%d/%m/%Y} 10:00")
    assert cda.texts()[0] == tr("hi", "The meeting is already at that time.")
    new_day = local_day(5)
    await cda.send(f"{new_day:%d/%m/%Y} 15:00")
    await cda.click(tr("hi", "Yes, move it"))
    assert plural("hi", "The meeting is moved. {count} person will be told.", "The meeting is moved. {count} people will be told.", 3) in cda.texts()
    meeting = await only_meeting(sessionmaker)
    assert meeting.revision == 2 and as_utc(meeting.starts_at) == utc_at(new_day, 15, 0)
    reminders = await rows(sessionmaker, MeetingReminder)
    assert {(r.revision, r.kind, r.done_at is None) for r in reminders} == {
        (1, "24h", False), (1, "2h", False), (2, "24h", True), (2, "2h", True)}
    assert {as_utc(r.due_at) for r in reminders if r.revision == 2} == {
        utc_at(new_day, 15, 0) - timedelta(hours=24), utc_at(new_day, 15, 0) - timedelta(hours=2)}
    await app.deps.extra["sender"].drain()
    moved = [m for m in notices_to(api, ASHA) if "🔄" in m["text"]]
    assert len(moved) == 1
    hindi = Translator("hi", "Asia/Kolkata")
    assert svc.when_text(hindi, utc_at(new_day, 15, 0)) in moved[0]["text"]
    assert tr("hi", "Before: {when}", when=svc.when_text(hindi, utc_at(first_day, 10, 0))) in moved[0]["text"]
    assert tr("hi", "Your answer so far: {answer}. Press a button to change it.", answer=tr("hi", "✅ Yes")) in moved[0]["text"]
    assert len([m for m in notices_to(api, JOHN) if "🔄" in m["text"]]) == 1
    await asha.click(tr("hi", "📅 Add to calendar"))
    _, properties, _ = calendar_of(api, ASHA)
    assert prop(properties, "SEQUENCE") == "2" and prop(properties, "DTSTART") == utc_at(new_day, 15, 0).strftime("%Y%m%dT%H%M%SZ")

    # Reminders of the new time are queued, then the meeting is cancelled before they go out.
    assert await svc.queue_due_reminders(app.deps.sessionmaker, now=utc_at(new_day, 15, 0) - timedelta(hours=23)) == 1
    await cda.send("/meeting")
    await cda.click("Joint marketing")
    await cda.click(tr("hi", "❌ Cancel the meeting"))
    await cda.click(tr("hi", "Yes, cancel it"))
    meeting = await only_meeting(sessionmaker)
    assert meeting.status == "cancelled"
    assert all(r.done_at is not None for r in await rows(sessionmaker, MeetingReminder))
    [queued_reminder] = await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_reminder")
    assert queued_reminder.status == "skipped"
    assert await svc.queue_due_reminders(app.deps.sessionmaker, now=utc_at(new_day, 15, 0) - timedelta(hours=1)) == 0
    await app.deps.extra["sender"].drain()
    assert reminders_to(api, ASHA) == []
    cancelled = [m for m in notices_to(api, ASHA) if "❌" in m["text"] and "Joint marketing" in m["text"]]
    assert len(cancelled) == 1 and tr("hi", "The meeting will not take place.") in cancelled[0]["text"]
    cancellations = await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_cancel")
    assert len(cancellations) == 6 and sum(m.attachment is not None for m in cancellations) == 3  # notice + file each

    # An old notice's buttons now say so; the calendar file removes the entry.
    stale_notice = next(m for m in notices_to(api, JOHN) if "🔄" in m["text"])
    john_id = await stakeholder_id(sessionmaker, JOHN)
    invite_id = next(i.id for i in await rows(sessionmaker, MeetingInvite) if i.stakeholder_id == john_id)
    john = ChatUser(app, api, JOHN)
    await john.press(f"mtr:{invite_id}:y", stale_notice)
    assert john.alerts() == ["This meeting was cancelled."]
    await asha.click(tr("hi", "📅 Remove from calendar"))
    _, properties, _ = calendar_of(api, ASHA)
    assert prop(properties, "METHOD") == "CANCEL" and prop(properties, "STATUS") == "CANCELLED" and prop(properties, "SEQUENCE") == "2"
    await cda.send("/meeting")
    assert cda.last_text() == tr("hi", "There is no upcoming meeting. Call a new one?")


async def test_cancel_before_the_notice_left_tells_nobody(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(days=2))
    async with sessionmaker() as session:
        meeting = await session.get(Meeting, meeting.id)
        assert await svc.cancel_meeting(session, meeting=meeting, actor_user_id=CDA_ID) == 0
    invites = await rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "meeting_invite")
    assert len(invites) == 6 and {m.status for m in invites} == {"skipped"}  # 3 notices, 3 calendar files
    await app.deps.extra["sender"].drain()
    assert api.sent(ASHA) == []


# ---------------------------------------------------------------- permissions


async def test_who_may_do_what(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(days=2))
    await app.deps.extra["sender"].drain()
    invites = {i.stakeholder_id: i for i in await rows(sessionmaker, MeetingInvite)}
    asha_invite = invites[await stakeholder_id(sessionmaker, ASHA)]
    calendars_sent_with_the_notice = len(api.sent(JOHN, "sendDocument"))

    # A stakeholder is refused /meeting by the guard, in Hindi, and it is logged.
    asha = ChatUser(app, api, ASHA)
    await asha.send("/meeting")
    assert asha.texts() == [tr("hi", REFUSED)]

    # A forged RSVP or calendar press for someone else's invite is refused and changes nothing.
    john = ChatUser(app, api, JOHN)
    [john_notice] = notices_to(api, JOHN)
    await john.press(f"mtr:{asha_invite.id}:n", john_notice)
    assert john.alerts() == ["This invitation is not for you."]
    await john.press(f"mtc:{asha_invite.id}", john_notice)
    assert john.alerts() == ["This invitation is not for you."]
    assert len(api.sent(JOHN, "sendDocument")) == calendars_sent_with_the_notice == 1
    async with sessionmaker() as session:
        assert (await session.get(MeetingInvite, asha_invite.id)).response is None
    # So is the CDA pressing an invitee's button: the CDA is not the invitee.
    cda = ChatUser(app, api, CDA_ID, language_code="en")
    await cda.press(f"mtr:{asha_invite.id}:y", john_notice)
    assert cda.alerts() == ["This invitation is not for you."]

    # The CDA of another cluster sees none of this meeting and cannot reach it with forged data.
    other = await make_cluster(sessionmaker, name="Tiruppur Knitwear")
    async with sessionmaker() as session:
        await add_cda(session, telegram_user_id=OTHER_CDA, cluster=other)
    stranger = ChatUser(app, api, OTHER_CDA, language_code="ta")
    await stranger.send("/meeting")
    assert stranger.last_text() == tr("ta", "There is no upcoming meeting. Call a new one?")
    menu = stranger.bot_messages()[-1]
    await stranger.press(f"mtg:menu:{meeting.id}", menu)
    assert stranger.alerts() == [tr("ta", REFUSED)]
    await stranger.press(f"mtt:{meeting.id}", menu)
    assert stranger.alerts() == [tr("ta", REFUSED)]
    assert await rows(sessionmaker, MeetingInvite, MeetingInvite.response.is_not(None)) == []

    # A coordinator may refresh the tally of a meeting of their activity, and no other.
    async with sessionmaker() as session:
        activity = Activity(cluster_id=cluster.id, year=2026, title={"en": "Design clinic"})
        session.add(activity)
        await session.flush()
        session.add(ActivityPerson(activity_id=activity.id, stakeholder_id=await stakeholder_id(sessionmaker, JOHN), role="coordinator"))
        linked = await session.get(Meeting, meeting.id)
        linked.activity_id = activity.id
        session.add(linked)
        await session.commit()
    other_meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(days=3), title="Unrelated")
    await john.press(f"mtt:{meeting.id}", john_notice)
    assert "📊" in api.messages[(JOHN, john_notice["message_id"])]["text"]
    await john.press(f"mtt:{other_meeting.id}", john_notice)
    assert john.alerts() == [REFUSED]
    await john.send("/meeting")
    assert john.texts() == [REFUSED]
    refusals = await rows(sessionmaker, AuditEntry, AuditEntry.action == "refused")
    assert len(refusals) >= 7


# ---------------------------------------------------------------- pieces


def test_typed_times():
    now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # 11:30 in India
    parse = lambda text: svc.parse_starts_at(text, timezone="Asia/Kolkata", now=now)  # noqa: E731
    assert parse("25/12/2026 17:30") == datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
    assert parse("२५/१२/२०२६ ५:३० pm") == datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
    assert parse("28-11-2026 12:00") == datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    assert parse("1/12/2026 12:15 AM") == datetime(2026, 11, 30, 18, 45, tzinfo=UTC)
    for wrong in ("25/12/2026", "25/12/2026 25:00", "31/02/2026 10:00", "tomorrow 10:00", "25/12/2026 13:00 pm", ""):
        with pytest.raises(svc.MeetingError) as problem:
            parse(wrong)
        assert problem.value.msgid.startswith("Please write the date and time")
    with pytest.raises(svc.MeetingError, match="already passed"):
        parse("28/11/2026 11:00")
    with pytest.raises(svc.MeetingError, match="more than a year"):
        parse("25/12/2028 10:00")


def test_calendar_file_folds_and_escapes():
    meeting = Meeting(
        id=7, cluster_id=1, title="கூட்டம்: பொது வசதி மையம், வங்கி கடன்; அடுத்த படிகள் " * 3, venue="Hall\\B",
        starts_at=datetime(2026, 12, 25, 12, 0, tzinfo=UTC), agenda="a\r\nb", revision=3,
        created_at=datetime(2026, 11, 1, tzinfo=UTC), latitude=None, longitude=None,
    )
    raw = ics.meeting_calendar(meeting, organizer='Agra; "Footwear"', now=datetime(2026, 11, 2, tzinfo=UTC))
    properties = parse_ics(raw)
    assert prop(properties, "SUMMARY").startswith("கூட்டம்: பொது வசதி மையம்\\, வங்கி கடன்\\; அடுத்த")
    assert prop(properties, "LOCATION") == "Hall\\\\B" and prop(properties, "DESCRIPTION") == "a\\nb"
    assert prop(properties, "SEQUENCE") == "3" and "GEO" not in properties
    assert prop(properties, "DTSTAMP") == "20261102T000000Z"
    assert properties["ORGANIZER"][0].startswith(';CN="Agra; Footwear":mailto:')
    assert prop(properties, "SUMMARY") == ics.escape_text(meeting.title)
    lines = raw.split(b"\r\n")
    assert len(lines) > 20 and max(len(line) for line in lines) <= 75
    for line in lines:
        line.decode()  # folding never splits a UTF-8 sequence


async def test_changing_a_started_meeting_is_refused(sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    meeting = await make_meeting(sessionmaker, cluster, starts_in=timedelta(hours=1))
    later = utcnow() + timedelta(hours=2)
    async with sessionmaker() as session:
        meeting = await session.get(Meeting, meeting.id)
        with pytest.raises(svc.MeetingError, match="already started"):
            await svc.reschedule_meeting(session, meeting=meeting, starts_at=later + timedelta(days=1), actor_user_id=CDA_ID, now=later)
        with pytest.raises(svc.MeetingError, match="already started"):
            await svc.cancel_meeting(session, meeting=meeting, actor_user_id=CDA_ID, now=later)
