"""The registration journey, end to end through the real Application."""

from __future__ import annotations

import json

from sqlmodel import select

from bot.services.stakeholders import NOTICE_VERSION
from models import AuditEntry, DialogState, Membership
from tests.chat import ChatUser
from tests.conftest import start_app, stop_app
from tests.helpers import make_cluster, rows_about, stakeholder_of, tr, tr_first_line

USER = 5_550_001


async def register(user: ChatUser, code: str, *, language_label: str = "English", role: str = "MSME owner",
                   size: str = "Micro", lang: str = "en") -> None:
    await user.send(f"/start {code}")
    await user.click(language_label)
    await user.click(tr(lang, "I agree"))
    await user.send("Asha Devi")
    await user.click(tr(lang, role))
    await user.send("Devi Brass Works")
    await user.send("Brass utensils")
    await user.click(tr(lang, size))
    await user.share_contact("+919876543210")
    await user.click(tr(lang, "✅ Confirm"))


async def test_english_journey_saves_everything(user_factory, sessionmaker, api):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="en")

    await user.send(f"/start {cluster.invite_code}")
    assert "Welcome to Moradabad Brassware" in user.last_text()
    assert user.buttons()[0] == "English" and "हिन्दी" in user.buttons() and "தமிழ்" in user.buttons()
    await user.click("English")
    assert "What we keep" in user.last_text() and "/forget" in user.last_text()
    await user.click("I agree")
    assert user.last_text() == "What is your name?"
    await user.send("Asha Devi")
    assert "describes you best" in user.last_text()
    await user.click("MSME owner")
    assert "name of your enterprise" in user.last_text()
    await user.send("Devi Brass Works")
    await user.send("Brass utensils")
    assert "Udyam" in user.last_text()
    await user.click("Micro")
    assert "Share my phone number" in user.reply_keyboard()
    await user.share_contact("+919876543210")
    summary = user.last_text()
    assert "Asha Devi" in summary and "Devi Brass Works" in summary and "+919876543210" in summary
    await user.click("✅ Confirm")
    assert "Thank you, Asha Devi! You are now a member of Moradabad Brassware." in user.last_text()
    assert "/profile" in user.last_text()

    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.name, stakeholder.role, stakeholder.enterprise, stakeholder.product) == (
        "Asha Devi", "msme_owner", "Devi Brass Works", "Brass utensils")
    assert (stakeholder.size_class, stakeholder.phone, stakeholder.language) == ("micro", "+919876543210", "en")
    assert stakeholder.notice_version == NOTICE_VERSION and stakeholder.consent_at is not None
    assert stakeholder.status == "active" and stakeholder.chat_id == USER
    assert await rows_about(sessionmaker, USER) == {
        "stakeholder": 1, "membership": 1, "dialog_state": 0, "user_preference": 0}
    # The menu follows the user's language, in their own chat.
    scope = json.dumps({"type": "chat", "chat_id": USER}, sort_keys=True)
    assert api.commands[(scope, "")][0]["command"] == "help"


async def test_hindi_journey_in_hindi_from_first_message(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker, name="मुरादाबाद पीतल क्लस्टर")
    user = user_factory(USER, language_code="hi")
    await user.send(f"/start {cluster.invite_code}")
    assert user.last_text().startswith(tr_first_line("hi", "Welcome to {cluster}!\n\nPlease choose your language.", cluster="मुरादाबाद पीतल क्लस्टर"))
    assert user.buttons()[0] == "हिन्दी"
    await user.click("हिन्दी")
    assert tr("hi", "I agree") in user.buttons()
    await user.click(tr("hi", "I agree"))
    assert user.last_text() == tr("hi", "What is your name?")
    await user.send("आशा देवी")
    await user.click(tr("hi", "Support institution (training, testing, R&D)"))
    # A support institution runs no enterprise: no enterprise name or size is asked.
    assert user.last_text().startswith(tr("hi", "What do you make, or which sector do you work in? For example: brass utensils, dyeing, credit.")[:20])
    await user.send("प्रशिक्षण")
    assert tr("hi", "Skip") in user.reply_keyboard()
    await user.send(tr("hi", "Skip"))
    assert tr("hi", "Please check your details:") in user.last_text()
    await user.click(tr("hi", "✅ Confirm"))
    assert tr("hi", "Thank you, {name}! You are now a member of {cluster}.", name="आशा देवी", cluster="मुरादाबाद पीतल क्लस्टर") in user.last_text()
    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.language, stakeholder.role, stakeholder.enterprise, stakeholder.size_class, stakeholder.phone) == (
        "hi", "support_institution", None, "not_enterprise", None)


async def test_tamil_journey_survives_a_restart_between_every_step(settings, api, sessionmaker):
    """Each step runs on a new Application over the same database, as after a crash."""
    cluster = await make_cluster(sessionmaker)
    steps = [
        ("send", f"/start {cluster.invite_code}"),
        ("click", "தமிழ்"),
        ("click", tr("ta", "I agree")),
        ("send", "முருகன்"),
        ("click", tr("ta", "MSME owner")),
        ("send", "முருகன் டெக்ஸ்டைல்ஸ்"),
        ("send", "பருத்தி துணி"),
        ("click", tr("ta", "Small")),
        ("contact", "+914423456789"),
        ("click", tr("ta", "✅ Confirm")),
    ]
    for number, (kind, value) in enumerate(steps):
        application = await start_app(settings, api)
        user = ChatUser(application, api, USER, language_code="en")
        try:
            if kind == "send":
                await user.send(value)
            elif kind == "click":
                await user.click(value)
            else:
                await user.share_contact(value)
            if 0 < number < len(steps) - 1:
                async with application.deps.sessionmaker() as session:
                    state = await session.get(DialogState, USER)
                assert state is not None, f"no state after step {number}"
        finally:
            await stop_app(application)
    assert tr("ta", "Thank you, {name}! You are now a member of {cluster}.", name="முருகன்", cluster=cluster.name) in user.last_text()
    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.name, stakeholder.enterprise, stakeholder.size_class, stakeholder.language) == (
        "முருகன்", "முருகன் டெக்ஸ்டைல்ஸ்", "small", "ta")


async def test_restart_mid_journey_keeps_earlier_answers(settings, api, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    first = await start_app(settings, api)
    user = ChatUser(first, api, USER, language_code="hi")
    await user.send(f"/start {cluster.invite_code}")
    await user.click("हिन्दी")
    await user.click(tr("hi", "I agree"))
    await user.send("आशा देवी")
    await stop_app(first)

    second = await start_app(settings, api)
    user = ChatUser(second, api, USER, language_code="hi")
    await user.send("/start")  # the user comes back and finds the same question
    assert tr("hi", "Which of these describes you best?") in user.last_text()
    await user.click(tr("hi", "Other"))
    await user.send("कृषि")
    await user.send(tr("hi", "Skip"))
    assert "आशा देवी" in user.last_text()
    await user.click(tr("hi", "✅ Confirm"))
    await stop_app(second)
    assert (await stakeholder_of(sessionmaker, USER)).name == "आशा देवी"


async def test_summary_lets_the_user_change_a_field(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="en")
    await user.send(f"/start {cluster.invite_code}")
    await user.click("English")
    await user.click("I agree")
    await user.send("Asha")
    await user.click("Bank or financial institution")
    await user.send("MSME credit")
    await user.send("Skip")
    await user.click("Change: Name")
    assert user.last_text() == "What is your name?"
    await user.send("Asha Sharma")
    assert "Asha Sharma" in user.last_text()
    await user.click("Change: Role")
    await user.click("MSME owner")
    # The new role runs an enterprise, so its name and size are asked before the summary.
    assert "name of your enterprise" in user.last_text()
    await user.send("Sharma Metals")
    await user.click("Medium")
    assert "Sharma Metals" in user.last_text()
    await user.click("✅ Confirm")
    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.name, stakeholder.role, stakeholder.enterprise, stakeholder.size_class) == (
        "Asha Sharma", "msme_owner", "Sharma Metals", "medium")


async def test_decline_keeps_nothing(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="ta")
    await user.send(f"/start {cluster.invite_code}")
    await user.click("தமிழ்")
    await user.click(tr("ta", "I do not agree"))
    assert tr_first_line("ta", "All right. We have not kept anything about you.\n\nIf you change your mind, open your CDA's invite link again.") in user.last_text()
    assert await rows_about(sessionmaker, USER) == {
        "stakeholder": 0, "membership": 0, "dialog_state": 0, "user_preference": 0}


async def test_registered_user_joins_a_second_cluster_after_confirming(user_factory, sessionmaker):
    first = await make_cluster(sessionmaker, name="Firozabad Glass")
    second = await make_cluster(sessionmaker, name="Agra Footwear")
    user = user_factory(USER, language_code="en")
    await register(user, first.invite_code)
    await user.send(f"/start {second.invite_code}")
    assert "Do you also want to join Agra Footwear?" in user.last_text()
    await user.click("Yes, join")
    assert "You are now a member of Agra Footwear too." in user.last_text()
    await user.send(f"/start {second.invite_code}")
    assert "already a member of Agra Footwear" in user.last_text()
    async with sessionmaker() as session:
        memberships = (await session.exec(select(Membership))).all()
    assert len(memberships) == 2


async def test_refusals_are_logged(user_factory, sessionmaker):
    user = user_factory(USER, language_code="hi")
    await user.send("/broadcast")
    assert user.last_text() == tr("hi", "Sorry, only the CDA of a cluster can use this command.")
    async with sessionmaker() as session:
        entry = (await session.exec(select(AuditEntry).where(AuditEntry.action == "refused"))).one()
    assert entry.actor_user_id == USER and entry.subject == "/broadcast"
