"""Surveys in chat, end to end: invitation, every question type, bad input, stale buttons,
restart in the middle, anonymity, linkage edges, reminders, closing, results."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.i18n import Translator
from bot.jobs import survey_maintenance
from bot.services.surveys.loaders import template_paths
from models import LinkageEdge, OutboxMessage, SurveyLaunch, SurveyResponse
from models.base import utcnow
from tests.chat import ChatUser
from tests.conftest import CDA_ID, start_app, stop_app
from tests.helpers import make_cluster, tr
from tests.survey_helpers import add_member, import_into, launch_via_chat
from tests.xlsforms import MSME_CHECK_CHOICES, MSME_CHECK_ROWS, write_xlsform

ASHA, MURUGAN, JOHN = 6_000_001, 6_000_002, 6_000_003


def template(name: str):
    return next(path for path in template_paths() if path.stem == name)


async def setup_cluster(sessionmaker):
    cluster = await make_cluster(sessionmaker)
    await add_member(sessionmaker, cluster, ASHA, "आशा देवी", "hi", enterprise="आशा ब्रास")
    await add_member(sessionmaker, cluster, MURUGAN, "முருகன்", "ta", enterprise="Murugan Knits")
    await add_member(sessionmaker, cluster, JOHN, "John Mathew", "en", role="bank")
    return cluster


async def response_of(sessionmaker, launch_id: int) -> list[SurveyResponse]:
    async with sessionmaker() as session:
        return list((await session.exec(select(SurveyResponse).where(SurveyResponse.launch_id == launch_id))).all())


async def test_xlsform_hindi_english_runs_end_to_end(app, api, sessionmaker, tmp_path):
    cluster = await setup_cluster(sessionmaker)
    await import_into(sessionmaker, cluster, write_xlsform(tmp_path / "check.xlsx", MSME_CHECK_ROWS, MSME_CHECK_CHOICES))
    launch = await launch_via_chat(app, api, "MSME quick check")

    asha = ChatUser(app, api, ASHA)
    invitation = next(m for (chat, _), m in api.messages.items() if chat == ASHA)
    assert tr("hi", "▶ Start") in str(invitation["reply_markup"])
    await asha.click(tr("hi", "▶ Start"))
    assert "<b>1 / 4</b>" in asha.last_text() and "कितने कामगार?" in asha.last_text()
    await asha.send("50%")
    assert tr("hi", "Please write only the number, without %, units or other signs.") in asha.last_text()
    await asha.send("0")
    assert "1 से 1000 के बीच" in asha.last_text()  # the form's own Hindi constraint message
    await asha.send("१२")
    assert "आपको कौन सी समस्याएँ हैं?" in asha.last_text() and "<b>2 / 4</b>" in asha.last_text()
    await asha.send("ऋण")  # typed instead of pressing
    assert tr("hi", "Please use the buttons below.") in asha.last_text()
    await asha.click("ऋण")
    await asha.click("बिजली कटौती")
    assert "✅ ऋण" in asha.buttons() and "✅ बिजली कटौती" in asha.buttons()
    await asha.click(tr("hi", "Done ✔"))
    # Credit was chosen, so the loan question appears and the total grows to 5.
    assert "कितना ऋण चाहिए (लाख)?" in asha.last_text() and "<b>3 / 5</b>" in asha.last_text()
    await asha.send("२.५")
    assert tr("hi", "Please write a whole number, without a decimal point.") in asha.last_text()
    await asha.send("३")
    await asha.click("नहीं")
    assert "धन्यवाद!" in asha.last_text()
    await asha.click(tr("hi", "Continue ▶"))
    assert asha.last_text() == tr("hi", "✅ Thank you! All your answers are saved.")
    # Every answered question was edited to show its answer, with no button left live.
    questions = [m for (chat, _), m in api.messages.items() if chat == ASHA and "<b>" in (m.get("text") or "") and not m["text"].startswith("📋")]
    assert all(not (m.get("reply_markup") or {}).get("inline_keyboard") for m in questions)
    [response] = await response_of(sessionmaker, launch.id)
    assert response.status == "completed"
    assert response.answers == {"workers": 12, "problems": ["credit", "power"], "loan_lakh": 3, "export": "no"}


async def test_templates_in_three_languages_with_anonymity_and_linkage(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    for name in ("activity_feedback", "trust_linkage"):
        await import_into(sessionmaker, cluster, template(name))

    # Activity feedback: anonymous, answered in Tamil.
    feedback = await launch_via_chat(app, api, "Feedback on the activity")
    murugan = ChatUser(app, api, MURUGAN)
    invitation = [m for (chat, _), m in api.messages.items() if chat == MURUGAN][-1]
    assert tr("ta", "This survey is anonymous: your answers are stored without your name.") in invitation["text"]
    await murugan.click(tr("ta", "▶ Start"))
    await murugan.click("4")
    await murugan.send("புதிய இயந்திரங்கள் பற்றிய விளக்கம்")
    await murugan.click(tr("ta", "◀ Back"))
    assert "<b>2 / 4</b>" in murugan.last_text()  # back at "what was useful", answer kept until replaced
    await murugan.send("இயந்திர விளக்கம்")
    await murugan.click("ஆம்")
    await murugan.click(tr("ta", "Skip"))
    assert murugan.last_text() == tr("ta", "✅ Thank you! All your answers are saved.")
    [response] = await response_of(sessionmaker, feedback.id)
    assert response.stakeholder_id is None and len(response.respondent_key) == 64
    assert response.answers == {"usefulness": 4, "useful_parts": "இயந்திர விளக்கம்", "take_part_again": "yes", "suggestions": None}
    await murugan.click(tr("ta", "▶ Start"))
    assert murugan.last_text() == tr("ta", "You have already answered this survey. Thank you!")

    # Trust & linkage in Hindi: two cluster members picked, each stored as an edge.
    trust = await launch_via_chat(app, api, "Trust and working together")
    asha = ChatUser(app, api, ASHA)
    await asha.click(tr("hi", "▶ Start"))
    await asha.click("2")
    await asha.click("3")
    await asha.send("५")
    assert "Murugan Knits" in str(asha.buttons())
    await asha.send("john")  # search by part of the name
    assert asha.buttons()[0] == "▫️ John Mathew"
    await asha.click("John Mathew")
    await asha.send("முருகன்")
    await asha.click("முருகன்")
    await asha.click(tr("hi", "Done ✔"))
    assert asha.last_text() == tr("hi", "✅ Thank you! All your answers are saved.")
    async with sessionmaker() as session:
        edges = (await session.exec(select(LinkageEdge).where(LinkageEdge.launch_id == trust.id))).all()
    assert len(edges) == 2 and {e.question for e in edges} == {"works_with"}
    [response] = await response_of(sessionmaker, trust.id)
    assert response.answers["joint_activities"] == 5 and response.answers["trust_firms"] == 2


async def test_diagnostic_in_english_with_skip_logic(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    await import_into(sessionmaker, cluster, template("diagnostic_study"))
    launch = await launch_via_chat(app, api, "Diagnostic study of the cluster")
    john = ChatUser(app, api, JOHN)
    await john.click("▶ Start")
    await john.send("Loans to brass units")
    await john.send("-5")
    assert "Please write a number of people, at least 1." in john.last_text()
    await john.send("14")
    await john.send("9")
    await john.click("Export")
    await john.click("Done ✔")
    await john.click("Continue ▶")
    for _ in range(7):
        await john.click("Serious problem")
    await john.click("Skip")  # untapped potential is optional
    for _ in range(3):
        await john.click("Banks")
        await john.click("Done ✔")
    await john.click("None")
    await john.click("DIC")
    await john.click("Done ✔")
    assert "“None” cannot be chosen together with others." in john.last_text()
    await john.click("None")  # untick
    await john.click("Done ✔")
    await john.click("No")
    assert john.last_text() == "✅ Thank you! All your answers are saved."
    [response] = await response_of(sessionmaker, launch.id)
    answers = response.answers
    assert "joint_kinds" not in answers and answers["joint_willing"] == "no"
    assert answers["markets"] == ["export"] and answers["c_regulation"] == "serious"
    assert answers["institutions_used"] == ["dic"] and answers["employees"] == 14


async def test_restart_mid_survey_resumes_at_the_same_question(settings, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    await import_into(sessionmaker, cluster, template("trust_linkage"))
    first = await start_app(settings, api)
    launch = await launch_via_chat(first, api, "Trust and working together")
    asha = ChatUser(first, api, ASHA)
    await asha.click(tr("hi", "▶ Start"))
    await asha.click("4")
    stale_message, stale_data = asha.find_button("5")  # a button of the question now on screen
    await asha.click("5")
    await stop_app(first)

    second = await start_app(settings, api)
    asha = ChatUser(second, api, ASHA)
    await asha.send("/surveys")
    assert tr("hi", "{k} of {n}").format(k="3", n="4") in asha.last_text()
    await asha.click("▶")
    assert tr("hi", "Welcome back! We continue where you left off.") in asha.texts()[0]
    assert "<b>3 / 4</b>" in asha.last_text()
    # A stale button (question 2, already answered) is refused and the current question shown.
    await asha.press(stale_data, stale_message)
    assert asha.alerts()[0] == tr("hi", "This question is no longer open.")
    assert "<b>3 / 4</b>" in asha.last_text()
    await asha.send("२")
    await asha.click(tr("hi", "Done ✔"))
    [response] = await response_of(sessionmaker, launch.id)
    assert response.status == "completed" and response.answers["trust_firms"] == 4 and response.answers["trust_institutions"] == 5
    await stop_app(second)


async def test_reminder_once_then_closing(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    await import_into(sessionmaker, cluster, template("activity_feedback"))
    launch = await launch_via_chat(app, api, "Feedback on the activity")
    john = ChatUser(app, api, JOHN)
    await john.click("▶ Start")
    for step in ("5", None, "Yes", "Skip"):
        if step is None:
            await john.send("All of it")
        else:
            await john.click(step)
    async with sessionmaker() as session:
        row = await session.get(SurveyLaunch, launch.id)
        row.remind_at = utcnow() - timedelta(minutes=1)
        await session.commit()
    assert await survey_maintenance(sessionmaker) == 2  # Asha and Murugan, not John who answered
    assert await survey_maintenance(sessionmaker) == 0  # never twice, even if the job runs again
    await app.deps.extra["sender"].drain()
    reminder = [m for (chat, _), m in api.messages.items() if chat == MURUGAN][-1]
    assert reminder["text"].startswith("⏰")
    async with sessionmaker() as session:
        reminders = (await session.exec(select(OutboxMessage).where(OutboxMessage.purpose == "survey_reminder"))).all()
        assert sorted(r.chat_id for r in reminders) == [ASHA, MURUGAN] and all(r.status == "sent" for r in reminders)
        row = await session.get(SurveyLaunch, launch.id)
        row.closes_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    await survey_maintenance(sessionmaker)
    asha = ChatUser(app, api, ASHA)
    await asha.click(tr("hi", "▶ Start"))
    assert asha.last_text() == tr("hi", "This survey is closed. Thank you for your interest.")
    await asha.send("/surveys")
    assert asha.last_text() == tr("hi", "There are no open surveys for you right now.")


async def test_results_and_permissions(app, api, sessionmaker, user_factory):
    cluster = await setup_cluster(sessionmaker)
    await import_into(sessionmaker, cluster, template("activity_feedback"))
    launch = await launch_via_chat(app, api, "कार्यक्रम पर आपकी राय", language="hi")
    for user_id, score in ((JOHN, "5"), (ASHA, "2")):
        user = ChatUser(app, api, user_id)
        await user.click(tr(Translator("hi").language if user_id == ASHA else "en", "▶ Start"))
        await user.click(score)
        await user.click(tr("hi" if user_id == ASHA else "en", "Skip"))
        await user.click("हाँ" if user_id == ASHA else "Yes")
        await user.click(tr("hi" if user_id == ASHA else "en", "Skip"))
    cda = ChatUser(app, api, CDA_ID, language_code="hi")
    await cda.send("/results")
    await cda.click("कार्यक्रम पर आपकी राय")
    text = cda.last_text()
    t = Translator("hi")
    assert t("Answered: {completed} of {invited} ({rate}), {open} still answering").format(
        completed="2", invited="3", rate=t.percent(2 / 3), open="0") in text
    assert t("average {mean}, median {median}").format(mean="3.5", median="3.5") in text
    assert "हाँ: 2" in text

    # Someone else's answer button, a stakeholder's /launch and /results: all refused.
    murugan = ChatUser(app, api, MURUGAN)
    [response, *_] = await response_of(sessionmaker, launch.id)
    await murugan.press(f"sva:{response.id}:usefulness:r3", murugan.bot_messages()[-1])
    assert murugan.alerts() == [tr("ta", "This question is no longer open.")]
    for command in ("/launch", "/results"):
        await murugan.send(command)
        assert murugan.last_text() == tr("ta", "Sorry, only the CDA of a cluster can use this command.")
    outsider = user_factory(6_999_999, language_code="en")
    await outsider.press(f"svs:{launch.id}", murugan.bot_messages()[-1])
    assert outsider.alerts() == ["This survey is not open for you."]


MEDIA_FORM = """
form_id: site_visit
version: "1"
default_language: en
title: {en: Site visit, hi: साइट विज़िट}
questions:
  - {name: intro, type: acknowledge, label: {en: "I am at the unit now", hi: मैं अभी इकाई पर हूँ}}
  - {name: photo, type: image, required: true, label: {en: Photo of the furnace, hi: भट्ठी की फ़ोटो}}
  - {name: where, type: geopoint, label: {en: "Where is the unit?", hi: "इकाई कहाँ है?"}}
  - {name: visited, type: date, required: true, constraint: ". <= today()", label: {en: Date of the visit, hi: विज़िट की तारीख}}
"""


async def test_photo_location_date_and_acknowledge(app, api, sessionmaker, tmp_path):
    cluster = await setup_cluster(sessionmaker)
    path = tmp_path / "visit.yaml"
    path.write_text(MEDIA_FORM, encoding="utf-8")
    await import_into(sessionmaker, cluster, path)
    launch = await launch_via_chat(app, api, "Site visit")
    asha = ChatUser(app, api, ASHA)
    await asha.click(tr("hi", "▶ Start"))
    await asha.click(tr("hi", "OK ✔"))
    await asha.send("यह रही फ़ोटो")
    assert tr("hi", "Please send a photo.") in asha.last_text()
    await asha._process(api.make_message(ASHA, None, photo=b"\x89PNG fake furnace"))
    assert "इकाई कहाँ है?" in asha.texts()[-2] or "इकाई कहाँ है?" in str(asha.texts())
    assert tr("hi", "Share my location") in asha.reply_keyboard()
    await asha._process(api.make_message(ASHA, None, location=(28.8386, 78.7733)))
    await asha.send("३१/१२/२०९९")
    assert tr("hi", "This answer is not allowed.") in asha.last_text()
    await asha.click(tr("hi", "Yesterday"))
    assert asha.last_text() == tr("hi", "✅ Thank you! All your answers are saved.")
    [response] = await response_of(sessionmaker, launch.id)
    assert response.answers["intro"] == "OK" and response.answers["where"] == "28.838600 78.773300"
    assert response.answers["photo"].startswith("AgAC") or len(response.answers["photo"]) > 10
    assert response.answers["visited"] == (utcnow().astimezone(Translator("hi").zone).date() - timedelta(days=1)).isoformat()


async def test_forget_keeps_anonymous_answers_only(app, api, sessionmaker):
    cluster = await setup_cluster(sessionmaker)
    for name in ("activity_feedback", "trust_linkage"):
        await import_into(sessionmaker, cluster, template(name))
    feedback = await launch_via_chat(app, api, "Feedback on the activity")
    trust = await launch_via_chat(app, api, "Trust and working together")
    john = ChatUser(app, api, JOHN)
    message, data = john.find_button("▶ Start")
    await john.press(f"svs:{feedback.id}", message)
    await john.click("3")
    await john.click("Skip")
    await john.click("No")
    await john.click("Skip")
    await john.press(f"svs:{trust.id}", message)
    await john.click("1")
    await john.click("1")
    await john.send("0")
    await john.click("आशा देवी")
    await john.click("Done ✔")
    await john.send("/mydata")
    exported = __import__("json").loads(next(c for c in john.replies if c.method == "sendDocument").files["document"][1])
    assert [r["survey"] for r in exported["survey_responses"]] == ["Trust and working together"]
    await john.send("/forget")
    await john.click("Yes, erase my data")
    assert len(await response_of(sessionmaker, feedback.id)) == 1  # anonymous: stays, unlinked
    assert await response_of(sessionmaker, trust.id) == []
    async with sessionmaker() as session:
        assert (await session.exec(select(LinkageEdge))).all() == []
