"""Completion reports end to end: a stakeholder reports in Hindi (bad input, Indian digits, photos,
refused files), the CDAs and the coordinator are told and verify; a restart in the middle loses
nothing; weekly reminders go out once per week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.i18n import Translator
from bot.services import activities
from bot.services.clusters import add_cda
from bot.services.reports import queue_weekly_reminders
from bot.services.stakeholders import set_language
from models import Activity, AuditEntry, Cluster, CompletionReport, OutboxMessage
from models.base import utcnow
from tests.chat import ChatUser
from tests.conftest import CDA_ID, start_app, stop_app
from tests.helpers import tr
from tests.test_activity import (
    ASHA,
    JOHN,
    MURUGAN,
    RAVI,
    all_rows,
    hand_over,
    make_activity,
    sent_to,
    setup_cluster,
)
from tests.test_activity_import import document_update

ASSIGNED_CDA = 900_000_077


def photo_update(api, user_id: int) -> dict:
    return api.make_message(user_id, None, photo=b"\xff\xd8\xff fake jpeg")


async def the_report(sessionmaker) -> CompletionReport:
    [report] = await all_rows(sessionmaker, CompletionReport)
    return report


async def test_report_in_hindi_is_verified_by_the_cda(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    async with sessionmaker() as session:
        fresh_cluster = await session.get(Cluster, cluster.id)
        await add_cda(session, telegram_user_id=ASSIGNED_CDA, cluster=fresh_cluster)
        await set_language(session, telegram_user_id=ASSIGNED_CDA, language="ta")
    activity = await make_activity(sessionmaker, cluster, "Lean training", leads=[members["asha"].id],
                                   participants=[members["murugan"].id], due_date=utcnow().date() + timedelta(days=3))
    await hand_over(sessionmaker, activity, members["john"])
    hindi = Translator("hi")

    asha = user_factory(ASHA)
    await asha.send("/report")
    assert asha.last_text() == tr("hi", "Which activity do you want to report on?")
    await asha.send("लीन")  # typed instead of pressing: the list again
    assert tr("hi", "Please use the buttons below.") in asha.texts()
    assert asha.last_text() == tr("hi", "Which activity do you want to report on?")
    await asha.click("Lean training")
    assert tr("hi", "What is the status of “{title}”?", title="Lean training") in asha.last_text()
    await asha.send("चल रहा है")  # typed where a button is expected
    assert tr("hi", "Please use the buttons below.") in asha.last_text()
    await asha.click(tr("hi", "In progress"))
    assert tr("hi", "How far along is it? Type a number from 0 to 100, or press a button.") in asha.last_text()
    assert asha.buttons() == [hindi.percent(v / 100) for v in (0, 25, 50, 75, 100)]
    for bad, problem in (
        ("50%", "Please write only the number, without %, units or other signs."),
        ("-5", "Please write a number from 0 to 100."),
        ("120", "Please write a number from 0 to 100."),
    ):
        await asha.send(bad)
        assert tr("hi", problem) in asha.last_text(), bad
        assert (await the_report(sessionmaker)).step == "progress"
    await asha.send("५०")
    report = await the_report(sessionmaker)
    assert report.progress == 50 and report.step == "done_text" and report.status == "in_progress"
    await asha.send("दो दिन का प्रशिक्षण हुआ।")
    await asha.send("अठारह")
    assert tr("hi", "Please write a number using digits, for example 25.") in asha.last_text()
    await asha.send("१८")
    assert (await the_report(sessionmaker)).participants == 18

    await asha._process(document_update(api, ASHA, b"%PDF-1.4 minutes", "minutes.pdf"))
    assert tr("hi", "That file is not a photo. Please send photos only (pictures), or press Done.") in asha.last_text()
    await asha._process(photo_update(api, ASHA))
    assert asha.last_text() == tr("hi", "Photo {count} saved. Send more, or press Done.", count="1")
    await asha._process(document_update(api, ASHA, b"\xff\xd8\xff site photo", "site.jpg"))
    assert asha.last_text() == tr("hi", "Photo {count} saved. Send more, or press Done.", count="2")
    assert len((await the_report(sessionmaker)).photo_file_ids) == 2
    await asha.click(tr("hi", "Done ✔"))
    assert tr("hi", "Please check your report:") in asha.last_text()
    assert "दो दिन का प्रशिक्षण हुआ।" in asha.last_text()
    await asha.click(tr("hi", "📤 Submit"))
    assert asha.last_text() == tr("hi", "✅ Thank you! Your report is sent to the CDA.")

    report = await the_report(sessionmaker)
    assert report.state == "submitted" and report.submitted_at is not None and report.verified_at is None
    assert report.stakeholder_id == members["asha"].id
    async with sessionmaker() as session:
        assert (await session.get(Activity, activity.id)).status == "in_progress"
    notices = await all_rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "report_submitted")
    assert sorted(n.chat_id for n in notices) == sorted([CDA_ID, ASSIGNED_CDA, JOHN])
    await app.deps.extra["sender"].drain()
    cda_text = sent_to(api, CDA_ID)[-1]
    assert "📝 <b>Report on “Lean training”</b>" in cda_text and "From: आशा देवी" in cda_text
    assert "Progress: 50%" in cda_text and "People who took part: 18" in cda_text
    tamil = Translator("ta")
    assert tamil("📝 <b>Report on “{title}”</b>").format(title="Lean training") in sent_to(api, ASSIGNED_CDA)[-1]

    # A participant who is not the coordinator cannot verify, even with a forged button.
    murugan = user_factory(MURUGAN)
    message = next(m for (chat, _), m in api.messages.items() if chat == CDA_ID and "Report on" in (m.get("text") or ""))
    await murugan.press(f"rpv:{report.id}", message)
    assert murugan.alerts() == [tr("ta", "Sorry, you cannot do that for this activity.")]
    assert (await the_report(sessionmaker)).verified_at is None

    cda = user_factory(CDA_ID, language_code="en")
    await cda.click("🖼 Photos (2)")
    assert [c.method for c in cda.replies if c.method.startswith("send")] == ["sendPhoto", "sendDocument"]
    await cda.click("✔ Mark verified")
    report = await the_report(sessionmaker)
    assert report.verified_by == CDA_ID and report.verified_at is not None
    edited = next(m for (chat, _), m in api.messages.items() if chat == CDA_ID and "Report on" in (m.get("text") or ""))
    assert edited["text"].endswith("✔ <b>Verified</b>")
    assert [b["text"] for row in edited["reply_markup"]["inline_keyboard"] for b in row] == ["🖼 Photos (2)"]
    await app.deps.extra["sender"].drain()
    assert sent_to(api, ASHA)[-1] == tr("hi", "✔ Your report on “{title}” was verified. Thank you!", title="Lean training")
    john = user_factory(JOHN)
    await john.click("✔ Mark verified")
    assert john.alerts() == ["This report is already verified."]
    actions = [e.action for e in await all_rows(sessionmaker, AuditEntry)]
    assert "report.submit" in actions and "report.verify" in actions and "refused" in actions

    # The coordinator sees the activity's reports from /activity.
    await john.send("/activity")
    await john.click("📝 Reports")
    shown = next(text for text in john.texts() if "Report on" in text)
    assert "From: आशा देवी" in shown and "✔ Verified" in shown
    assert "activity.reports.view" in [e.action for e in await all_rows(sessionmaker, AuditEntry, AuditEntry.actor_user_id == JOHN)]


async def test_report_survives_a_restart_and_done_closes_the_activity(settings, api, sessionmaker):
    cluster, members = await setup_cluster(sessionmaker)
    activity = await make_activity(sessionmaker, cluster, "Common facility survey", leads=[members["murugan"].id])
    first = await start_app(settings, api)
    murugan = ChatUser(first, api, MURUGAN)
    await murugan.send("/report")
    await murugan.click("Common facility survey")
    status_message, old_status = murugan.find_button(tr("ta", "Done"))
    await murugan.click(tr("ta", "Done"))
    await murugan.click(Translator("ta").percent(1))
    assert (await the_report(sessionmaker)).step == "done_text"
    await stop_app(first)

    second = await start_app(settings, api)
    try:
        murugan = ChatUser(second, api, MURUGAN)
        await murugan.send("ஆய்வு முடிந்தது")
        assert tr("ta", "How many people took part? Type a number.") in murugan.last_text()
        # A button from before the restart, for a step already answered: stale, the current step again.
        await murugan.press(old_status, status_message)
        assert murugan.alerts() == [tr("ta", "This question is no longer open.")]
        assert tr("ta", "How many people took part? Type a number.") in murugan.last_text()
        await murugan.send("௧௨")  # Tamil digits
        await murugan.click(tr("ta", "Done ✔"))
        await murugan.click(tr("ta", "📤 Submit"))
        report = await the_report(sessionmaker)
        assert (report.status, report.progress, report.participants, report.done_text, report.state) == (
            "done", 100, 12, "ஆய்வு முடிந்தது", "submitted"
        )
        async with sessionmaker() as session:
            closed = await session.get(Activity, activity.id)
        assert closed.status == "done" and closed.completed_on == utcnow().astimezone(Translator("en").zone).date()
        # /report again offers nothing twice: a new report can be started on the done activity.
        await murugan.send("/report")
        assert "Common facility survey" in murugan.buttons()
    finally:
        await stop_app(second)


async def test_someone_not_on_the_activity_cannot_report(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    activity = await make_activity(sessionmaker, cluster, "Exposure visit", leads=[members["asha"].id])
    ravi = user_factory(RAVI)
    await ravi.send("/report")
    assert ravi.last_text() == tr("hi", "You are not on any activity yet. When the CDA adds you to one, you can report on it here.")
    message = {"message_id": 1, "chat": {"id": RAVI, "type": "private"}, "date": 0, "text": "x"}
    await ravi.press(f"rps:{activity.id}", message)
    assert ravi.alerts() == [tr("hi", "This activity is not open for your report.")]
    assert await all_rows(sessionmaker, CompletionReport) == []


def monday_morning(weeks: int = 0, hour_utc: float = 4.5) -> datetime:
    """A Monday at 10:00 in India (04:30 UTC) by default."""
    base = datetime(2030, 1, 7, tzinfo=UTC)  # a Monday
    return base + timedelta(weeks=weeks, hours=hour_utc)


async def test_weekly_reminders_are_queued_once_per_week(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    now = monday_morning()
    today = now.date()
    soon = await make_activity(sessionmaker, cluster, "Buyer-seller meet", year=2030, due_date=today + timedelta(days=3),
                               leads=[members["murugan"].id, members["asha"].id])
    overdue = await make_activity(sessionmaker, cluster, "Energy audit", year=2030, due_date=today - timedelta(days=10),
                                  leads=[members["john"].id])
    await make_activity(sessionmaker, cluster, "Far away", year=2030, due_date=today + timedelta(days=20), leads=[members["ravi"].id])
    await make_activity(sessionmaker, cluster, "Finished", year=2030, due_date=today - timedelta(days=3), status="done",
                        leads=[members["ravi"].id])
    reported = await make_activity(sessionmaker, cluster, "Reported", year=2030, due_date=today + timedelta(days=2),
                                   leads=[members["ravi"].id])
    async with sessionmaker() as session:
        session.add(CompletionReport(activity_id=reported.id, stakeholder_id=members["ravi"].id, state="submitted",
                                     submitted_at=now - timedelta(days=1), step="confirm", status="in_progress"))
        await session.commit()

    assert await queue_weekly_reminders(sessionmaker, now=now - timedelta(hours=2)) == 0  # 08:00 in India: too early
    assert await queue_weekly_reminders(sessionmaker, now=now) == 3
    assert await queue_weekly_reminders(sessionmaker, now=now + timedelta(minutes=1)) == 0
    assert await queue_weekly_reminders(sessionmaker, now=now + timedelta(days=3)) == 0
    rows = await all_rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "report_reminder")
    assert sorted((r.chat_id, r.ref_id) for r in rows) == sorted([(MURUGAN, soon.id), (ASHA, soon.id), (JOHN, overdue.id)])
    tamil = Translator("ta")
    murugan_row = next(r for r in rows if r.chat_id == MURUGAN)
    assert murugan_row.text == tamil(
        "⏰ Reminder: “{title}” is due on {date}. Please tell the CDA how it is going with /report."
    ).format(title="Buyer-seller meet", date=tamil.date(today + timedelta(days=3), "long"))
    john_row = next(r for r in rows if r.chat_id == JOHN)
    assert "was due on" in john_row.text
    # Next week, whoever has still not reported is reminded again.
    assert await queue_weekly_reminders(sessionmaker, now=monday_morning(weeks=1)) == 3

    # The reminder's button opens the report on that activity straight away.
    await app.deps.extra["sender"].drain()
    murugan = user_factory(MURUGAN)
    await murugan.click(tamil("📝 Report now"))
    assert tamil("What is the status of “{title}”?").format(title="Buyer-seller meet") in murugan.last_text()
    [draft] = await all_rows(sessionmaker, CompletionReport, CompletionReport.state == "draft")
    assert draft.activity_id == soon.id and draft.stakeholder_id == members["murugan"].id


async def test_service_refuses_answers_out_of_turn(sessionmaker):
    cluster, members = await setup_cluster(sessionmaker)
    activity = await make_activity(sessionmaker, cluster, "Training", leads=[members["asha"].id])
    from bot.services import reports

    async with sessionmaker() as session:
        fresh = await session.get(Activity, activity.id)
        asha = await session.get(type(members["asha"]), members["asha"].id)
        report, created = await reports.start_or_resume(session, activity=fresh, stakeholder=asha)
        assert created
        for step, value in (("progress", "50"), ("status", "cancelled")):
            try:
                await reports.answer(session, report=report, step=step, value=value)
            except reports.ReportProblem:
                pass
            else:
                raise AssertionError(f"{step}={value} was accepted")
        again, created = await reports.start_or_resume(session, activity=fresh, stakeholder=asha)
        assert not created and again.id == report.id
    assert activities.title_of(fresh, "hi", "en") == "Training"
