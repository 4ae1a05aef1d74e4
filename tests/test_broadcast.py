"""/broadcast end to end: compose with HTML checked and previewed, per-language versions, audiences,
send now with one progress message edited in place and a summary, scheduled sends that survive a
restart, and the permission checks on every step."""

from __future__ import annotations

import asyncio
import html
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, select

from bot.i18n import Translator
from bot.languages import LANGUAGES
from bot.services import broadcasts, dialogs
from bot.services.clusters import add_cda
from models import Activity, ActivityPerson, AuditEntry, Broadcast, OutboxMessage, OutboxStatus
from models.action_plan import ActivityRole
from models.base import utcnow
from models.stakeholder import StakeholderStatus
from tests.botapi import ApiError
from tests.conftest import CDA_ID, start_app, stop_app
from tests.helpers import make_cluster, stakeholder_of, tr
from tests.survey_helpers import add_member

TAMIL = [(810_000_001, "Murugan"), (810_000_002, "Lakshmi"), (810_000_003, "Selvi")]
ENGLISH = [(810_000_011, "Rahul"), (810_000_012, "Priya")]
HINDI = [(810_000_021, "Ramesh")]
BLOCKED = (810_000_004, "Kannan")  # Tamil, has blocked the bot


async def members(sessionmaker, cluster):
    found = {}
    for language, people in (("ta", TAMIL + [BLOCKED]), ("en", ENGLISH), ("hi", HINDI)):
        for user_id, name in people:
            found[user_id] = await add_member(sessionmaker, cluster, user_id, name, language)
    return found


async def latest_broadcast(sessionmaker) -> Broadcast:
    async with sessionmaker() as session:
        return (await session.exec(select(Broadcast).order_by(col(Broadcast.id).desc()))).first()


def hi(msgid: str, **values) -> str:
    return tr("hi", msgid, **values)


def progress_line(t: Translator, sent: int, total: int, unreachable: int) -> str:
    return t("{sent} / {total} sent, {unreachable} unreachable").format(
        sent=t.number(sent), total=t.number(total), unreachable=t.number(unreachable))


async def compose(cda, text: str, language: str) -> None:
    await cda.send("/broadcast")
    assert html.escape(tr(language, "Write the notice. You can format it with Telegram's own buttons, or with HTML tags: "
                          "<b>bold</b>, <i>italic</i>, <u>underline</u>, <a href=\"https://...\">link</a>.\n"
                          "People whose language has no version of its own will get this text.")) in cda.texts()
    await cda.send(text)


async def test_cda_in_hindi_broadcasts_with_a_tamil_version(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker, language="hi")
    people = await members(sessionmaker, cluster)
    api.blocked_chat_ids.add(BLOCKED[0])
    cda = user_factory(CDA_ID, language_code="hi")

    await compose(cda, "<b>बैठक</b> कल 10 बजे, सामुदायिक भवन में। Q&A के लिए आइए", "hi")
    default = "<b>बैठक</b> कल 10 बजे, सामुदायिक भवन में। Q&amp;A के लिए आइए"
    # The preview is the very text recipients get, as its own message.
    assert cda.texts()[:2] == [hi("Recipients will see exactly this:"), default]
    await cda.click(hi("➕ Add a language version"))
    assert LANGUAGES["hi"] in cda.buttons() and LANGUAGES["ta"] in cda.buttons()
    await cda.click(LANGUAGES["ta"])
    assert hi("Write the notice in {language}.", language=LANGUAGES["ta"]) in cda.texts()
    await cda.send("<b>கூட்டம்</b> நாளை காலை 10 மணிக்கு")
    assert "<b>கூட்டம்</b> நாளை காலை 10 மணிக்கு" in cda.texts()
    await cda.click(hi("➡️ Continue"))
    await cda.click(hi("Everyone in the cluster"))
    await cda.click(hi("📤 Send now"))
    t = Translator("hi")
    confirm = cda.last_text()
    assert hi("To: {audience} ({count})", audience=hi("Everyone in the cluster"),
              count=t.ngettext("{count} person", "{count} people", 7).format(count=t.number(7))) in confirm
    assert f"{LANGUAGES['ta']}: {t.number(4)}" in confirm and f"{hi('Default')}: {t.number(3)}" in confirm

    await cda.click(hi("📤 Send"))
    row = await latest_broadcast(sessionmaker)
    assert row.status == broadcasts.SENDING and row.recipients == 7
    assert set(row.texts) == {"default", "ta"} and row.audience["reply_language"] == "hi"
    progress_id = row.progress_message_id
    assert api.messages[(CDA_ID, progress_id)]["text"].endswith(progress_line(t, 0, 7, 0))

    await app.deps.extra["sender"].drain()

    for user_id, _ in TAMIL:
        assert [c.params["text"] for c in api.sent(user_id)] == ["<b>கூட்டம்</b> நாளை காலை 10 மணிக்கு"]
    for user_id, _ in ENGLISH + HINDI:
        assert [c.params["text"] for c in api.sent(user_id)] == [default]
    assert api.sent(BLOCKED[0]) == []
    assert (await stakeholder_of(sessionmaker, BLOCKED[0])).status == StakeholderStatus.UNREACHABLE

    # One progress message, edited in place to the final figures, then a summary with a button.
    final = api.messages[(CDA_ID, progress_id)]["text"]
    assert final == hi("✅ Broadcast sent: “{title}”", title=html.escape(broadcasts.plain_excerpt(default))) + "\n" + progress_line(t, 6, 7, 1)
    figures = f" / {t.number(7)} "
    assert not [c for c in api.sent(CDA_ID) if figures in c.params["text"]]
    edits = [c for c in api.calls if c.method == "editMessageText" and figures in c.params.get("text", "")]
    assert edits and {c.params["message_id"] for c in edits} == {progress_id}
    summary = cda.last_text()
    assert hi("✅ Sent: {count}", count=t.number(6)) in summary
    assert hi("🚫 Unreachable (blocked the bot or left Telegram): {count}", count=t.number(1)) in summary
    assert hi("⚠️ Failed: {count}", count=t.number(0)) in summary
    await cda.click(hi("List who did not get it"))
    listing = cda.last_text()
    assert "Kannan" in listing and hi("unreachable") in listing and "Murugan" not in listing

    row = await latest_broadcast(sessionmaker)
    assert row.status == broadcasts.DONE and row.finished_at is not None
    async with sessionmaker() as session:
        audit = (await session.exec(select(AuditEntry).where(AuditEntry.action == "broadcast.create"))).all()
        statuses = (await session.exec(select(OutboxMessage.status).where(OutboxMessage.purpose == broadcasts.PURPOSE))).all()
        state = await dialogs.get_state(session, telegram_user_id=CDA_ID)
    assert len(audit) == 1 and audit[0].detail["languages"] == ["default", "ta"]
    assert sorted(statuses) == sorted([OutboxStatus.SENT] * 6 + [OutboxStatus.SKIPPED])
    assert state is None
    assert people  # every member was registered

    # Draining again sends nothing more: no recipient, no summary twice.
    calls = len(api.sent())
    await app.deps.extra["sender"].drain()
    assert len(api.sent()) == calls


async def test_english_cda_sends_to_one_language_only(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker)
    people = await members(sessionmaker, cluster)
    async with sessionmaker() as session:
        blocked = people[BLOCKED[0]]
        blocked.status = StakeholderStatus.UNREACHABLE  # known from an earlier send
        session.add(blocked)
        await session.commit()
    cda = user_factory(CDA_ID, language_code="en")
    await compose(cda, "Training on <i>zero-defect</i> casting on Friday", "en")
    await cda.click("➡️ Continue")
    await cda.click("One language")
    await cda.click(LANGUAGES["ta"])
    await cda.click("📤 Send now")
    assert "To: தமிழ் (4 people)" in cda.last_text()
    assert "1 of them has blocked the bot and will be skipped." in cda.last_text()
    await cda.click("📤 Send")
    await app.deps.extra["sender"].drain()
    assert {c.params["chat_id"] for c in api.sent(include_failed=True) if c.params["chat_id"] != CDA_ID} == {uid for uid, _ in TAMIL}
    assert "🚫 Unreachable (blocked the bot or left Telegram): 1" in cda.last_text()


async def test_html_is_checked_before_anything_is_kept(app, api, sessionmaker, user_factory):
    await make_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="ta")
    await cda.send("/broadcast")
    await cda.send("<div>Meeting</div>")
    refusal = html.escape(tr("ta", "Telegram does not support the tag {tag}. These work: {allowed}.", tag="<div>",
                             allowed='<b>, <i>, <u>, <s>, <a href="...">, <code>, <pre>, <blockquote>'))
    assert cda.texts()[0].startswith(refusal)
    await cda.send("<b>Meeting tomorrow")
    assert cda.texts()[0].startswith(html.escape(tr("ta", "The tag <{tag}> is not closed: add </{tag}>.", tag="b")))
    await cda.send('<a href="https://example.org">link</b>')
    assert cda.texts()[0].startswith(html.escape(tr("ta", "</{tag}> does not close the last opened tag.", tag="b")))
    async with sessionmaker() as session:
        state = await dialogs.get_state(session, telegram_user_id=CDA_ID)
    assert state.step == "text" and state.data["texts"] == {}

    # Telegram itself refusing the preview is caught too, and nothing is kept.
    def refuse(params, files):
        raise ApiError(400, "Bad Request: can't parse entities: unexpected end tag")

    api.on("sendMessage", lambda p, f: refuse(p, f) if "BOOM" in p.get("text", "") else api._send_message(p, f))
    await cda.send("BOOM <b>x</b>")
    assert tr("ta", "Telegram refused this text: {error}. Please correct it and send it again.").split("{error}")[0] in cda.texts()[-1]
    api.on("sendMessage", None)

    # Formatting made with Telegram's own buttons arrives as entities and is kept as HTML.
    update = api.make_message(CDA_ID, "Meeting tomorrow < 5 pm", language_code="ta")
    update["message"]["entities"] = [{"type": "bold", "offset": 0, "length": 7}]
    await cda._process(update)
    assert "<b>Meeting</b> tomorrow &lt; 5 pm" in cda.texts()
    async with sessionmaker() as session:
        state = await dialogs.get_state(session, telegram_user_id=CDA_ID)
    assert state.step == "versions" and state.data["texts"] == {"default": "<b>Meeting</b> tomorrow &lt; 5 pm"}


def test_check_html_rules():
    assert broadcasts.check_html("Price < 500 & 10% > cost") == "Price &lt; 500 &amp; 10% &gt; cost"
    assert broadcasts.check_html('<a href="https://x.org/?a=1&amp;b=2">x</a> &#8377; &lt;') == '<a href="https://x.org/?a=1&amp;b=2">x</a> &#8377; &lt;'
    assert broadcasts.check_html("<blockquote expandable>q</blockquote><pre><code class=\"language-py\">x</code></pre>")
    for bad in ("<span>x</span>", "<a>x</a>", "<b><i>x</b></i>", "<code><b>x</b></code>", "<br/>", "   ", "x" * 4097):
        try:
            broadcasts.check_html(bad)
        except broadcasts.HtmlProblem:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_parse_when_reads_the_cluster_time_zone():
    zone = ZoneInfo("Asia/Kolkata")
    january = utcnow().replace(year=2026, month=1, day=1)
    moment = broadcasts.parse_when("25/12/2026 18:30", zone=zone, now=january)
    assert moment.isoformat() == "2026-12-25T13:00:00+00:00"
    # Indian-script digits and a 12-hour clock read the same.
    assert broadcasts.parse_when("२५/१२/२०२६ ६:३० pm", zone=zone, now=january) == moment
    assert broadcasts.parse_when("25.12.2026 18.30", zone=zone, now=january) == moment
    for bad in ("tomorrow", "25/12/2026", "31/02/2026 10:00", "25/12/2028 10:00"):
        try:
            broadcasts.parse_when(bad, zone=zone, now=january)
        except broadcasts.WhenProblem:
            continue
        raise AssertionError(bad)


async def test_scheduled_broadcast_survives_a_restart_and_starts_once(app, api, sessionmaker, settings, user_factory):
    cluster = await make_cluster(sessionmaker)
    await members(sessionmaker, cluster)
    cda = user_factory(CDA_ID, language_code="en")
    await compose(cda, "Exposure visit to Rajkot next month", "en")
    await cda.click("➡️ Continue")
    await cda.click("One role")
    await cda.click("MSME owner")
    await cda.click("🕒 At a date and time")
    await cda.send("01/01/2001 10:00")
    assert cda.texts() == ["That time has passed. Please give a time in the future."]
    zone = ZoneInfo(cluster.timezone)
    local = (utcnow() + timedelta(days=2)).astimezone(zone).replace(hour=18, minute=30, second=0, microsecond=0)
    await cda.send(local.strftime("%d/%m/%Y %H:%M"))
    await cda.click("📤 Send")
    assert "Scheduled for" in cda.last_text()
    row = await latest_broadcast(sessionmaker)
    assert row.status == broadcasts.SCHEDULED
    assert broadcasts.scheduled_for(row) == local.astimezone(ZoneInfo("UTC"))
    assert await broadcasts.start_due_broadcasts(sessionmaker) == 0  # not due yet

    # The bot restarts; the time comes while it is down.
    await stop_app(app)
    async with sessionmaker() as session:
        await session.exec(update(Broadcast).where(col(Broadcast.id) == row.id).values(scheduled_at=utcnow() - timedelta(minutes=3)))
        await session.commit()
    restarted = await start_app(settings, api)
    try:
        first, second = await asyncio.gather(
            broadcasts.start_due_broadcasts(restarted.deps.sessionmaker),
            broadcasts.start_due_broadcasts(restarted.deps.sessionmaker),
        )
        assert sorted([first, second]) == [0, 8]  # 7 recipients and the progress message, once
        assert await broadcasts.start_due_broadcasts(restarted.deps.sessionmaker) == 0
        await restarted.deps.extra["sender"].drain()
    finally:
        await stop_app(restarted)
    recipients = [c.params["chat_id"] for c in api.sent() if c.params["chat_id"] != CDA_ID]
    assert sorted(recipients) == sorted(uid for uid, _ in TAMIL + [BLOCKED] + ENGLISH + HINDI)
    row = await latest_broadcast(sessionmaker)
    assert row.status == broadcasts.DONE and row.progress_message_id is not None
    t = Translator("en")
    assert progress_line(t, 7, 7, 0) in api.messages[(CDA_ID, row.progress_message_id)]["text"]
    assert "Broadcast finished" in api.sent(CDA_ID)[-1].params["text"]


async def test_a_scheduled_broadcast_can_be_cancelled(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker)
    await members(sessionmaker, cluster)
    cda = user_factory(CDA_ID, language_code="en")
    await compose(cda, "Notice", "en")
    await cda.click("➡️ Continue")
    await cda.click("Everyone in the cluster")
    await cda.click("🕒 At a date and time")
    zone = ZoneInfo(cluster.timezone)
    await cda.send((utcnow() + timedelta(days=1)).astimezone(zone).strftime("%d/%m/%Y %H:%M"))
    await cda.click("📤 Send")
    await cda.click("Cancel this broadcast")
    row = await latest_broadcast(sessionmaker)
    assert row.status == broadcasts.CANCELLED
    async with sessionmaker() as session:
        await session.exec(update(Broadcast).values(scheduled_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    assert await broadcasts.start_due_broadcasts(sessionmaker) == 0


async def test_progress_edits_are_throttled_while_the_sender_runs(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker)
    for n in range(60):
        await add_member(sessionmaker, cluster, 820_000_000 + n, f"Member {n}", "en")
    cda = user_factory(CDA_ID, language_code="en")
    await compose(cda, "Sixty people", "en")
    await cda.click("➡️ Continue")
    await cda.click("Everyone in the cluster")
    await cda.click("📤 Send now")
    await cda.click("📤 Send")
    sender = app.deps.extra["sender"]
    sender.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if (await latest_broadcast(sessionmaker)).status == broadcasts.DONE and len(api.sent(CDA_ID)) and "finished" in api.sent(CDA_ID)[-1].params["text"]:
                break
        else:
            raise AssertionError("the broadcast did not finish")
    finally:
        await sender.stop()
    row = await latest_broadcast(sessionmaker)
    edits = [c for c in api.calls if c.method == "editMessageText" and c.params.get("message_id") == row.progress_message_id]
    # Two seconds of sending: a handful of edits (at most one per two seconds, plus the last).
    assert 1 <= len(edits) <= 4
    assert progress_line(Translator("en"), 60, 60, 0) in api.messages[(CDA_ID, row.progress_message_id)]["text"]


async def test_coordinator_broadcasts_only_to_their_activity(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker)
    people = await members(sessionmaker, cluster)
    coordinator = await add_member(sessionmaker, cluster, 830_000_001, "Coordinator", "ta")
    async with sessionmaker() as session:
        mine = Activity(cluster_id=cluster.id, year=2026, title={"en": "Design workshop", "ta": "வடிவமைப்பு பட்டறை"})
        other = Activity(cluster_id=cluster.id, year=2026, title={"en": "Bank meet"})
        session.add(mine)
        session.add(other)
        await session.flush()
        session.add(ActivityPerson(activity_id=mine.id, stakeholder_id=coordinator.id, role=ActivityRole.COORDINATOR))
        for user_id in (TAMIL[0][0], ENGLISH[0][0]):
            session.add(ActivityPerson(activity_id=mine.id, stakeholder_id=people[user_id].id, role=ActivityRole.PARTICIPANT))
        session.add(ActivityPerson(activity_id=other.id, stakeholder_id=people[HINDI[0][0]].id, role=ActivityRole.PARTICIPANT))
        await session.commit()
        mine_id, other_id = mine.id, other.id
    user = user_factory(coordinator.telegram_user_id, language_code="ta")
    await compose(user, "பட்டறை <b>நாளை</b>", "ta")
    await user.click(tr("ta", "➡️ Continue"))
    # No audience question: a coordinator's notice goes to their activity's people.
    assert tr("ta", "When should it be sent?") in user.texts()
    await user.click(tr("ta", "📤 Send now"))
    await user.click(tr("ta", "📤 Send"))
    await app.deps.extra["sender"].drain()
    got = {c.params["chat_id"] for c in api.sent()} - {coordinator.chat_id}
    assert got == {TAMIL[0][0], ENGLISH[0][0]}
    row = await latest_broadcast(sessionmaker)
    assert row.audience["kind"] == "activity" and row.audience["value"] == mine_id

    # A forged button for an activity that is not theirs is refused and logged.
    async with sessionmaker() as session:
        await dialogs.set_state(session, telegram_user_id=coordinator.telegram_user_id, flow="bcs", step="activity",
                                data={"coordinator": True, "texts": {}})
    message = api.sent(coordinator.chat_id)[-1].response["result"]
    await user.press(f"bcs:activity:{other_id}", message)
    assert user.alerts() == [tr("ta", "Sorry, only the CDA of a cluster can use this command.")]
    async with sessionmaker() as session:
        state = await dialogs.get_state(session, telegram_user_id=coordinator.telegram_user_id)
        refusals = (await session.exec(select(AuditEntry).where(AuditEntry.action == "refused", AuditEntry.actor_user_id == coordinator.telegram_user_id))).all()
    assert state.step == "activity" and refusals

    # The failure list of a cluster-wide broadcast is not theirs either.
    async with sessionmaker() as session:
        cluster_wide = await broadcasts.create_broadcast(session, cluster_id=cluster.id, texts={"default": "x"}, audience={"kind": "all"},
                                                         scheduled_at=None, created_by=CDA_ID, reply_language="en")
    await user.press(f"bcf:{cluster_wide.id}", message)
    assert user.alerts() == [tr("ta", "Sorry, only the CDA of a cluster can use this command.")]
    await user.press(f"bcf:{row.id}", message)
    assert tr("ta", "Everyone received this broadcast.") in user.texts()


async def test_stakeholder_and_other_cluster_cda_are_refused(app, api, sessionmaker, user_factory):
    mine = await make_cluster(sessionmaker, "Mine")
    theirs = await make_cluster(sessionmaker, "Theirs")
    await members(sessionmaker, mine)
    async with sessionmaker() as session:
        await add_cda(session, telegram_user_id=840_000_001, cluster=mine)
        foreign = Activity(cluster_id=theirs.id, year=2026, title={"en": "Their fair"})
        session.add(foreign)
        session.add(Activity(cluster_id=mine.id, year=2026, title={"en": "Our fair"}))
        await session.commit()
        foreign_id = foreign.id

    stakeholder = user_factory(TAMIL[1][0], language_code="ta")
    await stakeholder.send("/broadcast")
    assert stakeholder.texts() == [tr("ta", "Sorry, only the CDA of a cluster can use this command.")]
    async with sessionmaker() as session:
        await dialogs.set_state(session, telegram_user_id=TAMIL[1][0], flow="bcs", step="confirm",
                                data={"cluster_id": mine.id, "texts": {"default": "x"}, "audience": {"kind": "all"}, "at": None})
    fake = {"message_id": 1, "chat": {"id": TAMIL[1][0], "type": "private"}, "date": 0, "text": "x"}
    await stakeholder.press("bcs:confirm:send", fake)
    assert stakeholder.alerts() == [tr("ta", "Sorry, only the CDA of a cluster can use this command.")]

    cda = user_factory(840_000_001, language_code="en")
    await compose(cda, "Hello", "en")
    async with sessionmaker() as session:
        assert (await dialogs.get_state(session, telegram_user_id=840_000_001)).data["cluster_id"] == mine.id
    await cda.click("➡️ Continue")
    await cda.click("The people of one activity")
    assert cda.buttons() == ["2026 — Our fair"]
    message = api.sent(840_000_001)[-1].response["result"]
    await cda.press(f"bcs:pick:{foreign_id}", message)
    assert cda.alerts() == ["Sorry, only the CDA of a cluster can use this command."]
    # A forged cluster id is refused as well, and nothing was ever queued.
    async with sessionmaker() as session:
        await dialogs.set_state(session, telegram_user_id=840_000_001, flow="bcs", step="cluster", data={"texts": {}})
    await cda.press(f"bcs:cluster:{theirs.id}", message)
    assert cda.alerts() == ["Sorry, only the CDA of a cluster can use this command."]
    async with sessionmaker() as session:
        assert (await session.exec(select(Broadcast))).all() == []
        assert (await session.exec(select(OutboxMessage))).all() == []


async def test_stale_button_shows_the_current_step_again(app, api, sessionmaker, user_factory):
    cluster = await make_cluster(sessionmaker)
    await members(sessionmaker, cluster)
    cda = user_factory(CDA_ID, language_code="en")
    await compose(cda, "Hello", "en")
    old, data = cda.find_button("➡️ Continue")
    await cda.click("➡️ Continue")
    await cda.press(data, old)
    assert cda.alerts() == ["This question is no longer open."]
    assert "Who should receive it?" in cda.texts()
    await cda.send("everyone")
    assert cda.texts()[0] == "Please use the buttons below."
