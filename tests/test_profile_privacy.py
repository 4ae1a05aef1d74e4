"""/profile, /language, /help, /mydata and /forget for a registered stakeholder."""

from __future__ import annotations

import json

from sqlmodel import select

from models import AuditEntry, Membership, Stakeholder
from tests.helpers import make_cluster, rows_about, stakeholder_of, tr
from tests.test_registration import register

USER = 5_550_003


async def registered(user_factory, sessionmaker, language_code="en"):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code=language_code)
    await register(user, cluster.invite_code)
    return user, cluster


async def test_profile_change_name_and_role(user_factory, sessionmaker):
    user, _ = await registered(user_factory, sessionmaker)
    await user.send("/profile")
    assert "Asha Devi" in user.last_text() and "Moradabad Brassware" in user.last_text()
    await user.click("Change: Name")
    await user.send("x" * 120)
    assert user.last_text().startswith("Please keep it under 100 characters.")
    await user.send("Asha D.")
    assert "Asha D." in user.last_text()
    await user.click("Change: Role")
    await user.click("Local government")
    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.name, stakeholder.role, stakeholder.enterprise, stakeholder.size_class) == (
        "Asha D.", "local_government", None, "not_enterprise")
    assert stakeholder.phone == "+919876543210"
    async with sessionmaker() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "stakeholder.update"))).all()
    assert [entry.detail["fields"] for entry in entries] == [["name"], ["enterprise", "role", "size_class"]]


async def test_cancel_mid_edit_keeps_saved_profile(user_factory, sessionmaker):
    user, _ = await registered(user_factory, sessionmaker)
    await user.send("/profile")
    await user.click("Change: Product or sector")
    await user.send("/cancel")
    assert user.last_text() == "Stopped. Everything you saved before is kept."
    assert (await stakeholder_of(sessionmaker, USER)).product == "Brass utensils"


async def test_language_switch_changes_replies_and_menu(user_factory, sessionmaker, api):
    user, _ = await registered(user_factory, sessionmaker)
    await user.send("/language")
    await user.click("ગુજરાતી")
    assert user.last_text() == tr("gu", "Done. I will write to you in {language}.", language="ગુજરાતી")
    await user.send("/help")
    assert tr("gu", "What you can do:") in user.last_text()
    assert (await stakeholder_of(sessionmaker, USER)).language == "gu"
    scope = json.dumps({"type": "chat", "chat_id": USER}, sort_keys=True)
    menu = {entry["command"]: entry["description"] for entry in api.commands[(scope, "")]}
    assert menu["profile"] == tr("gu", "See or change your details")


async def test_mydata_sends_everything_as_json(user_factory, sessionmaker, api):
    user, _ = await registered(user_factory, sessionmaker)
    await user.send("/mydata")
    document_call = next(call for call in user.replies if call.method == "sendDocument")
    filename, payload = document_call.files["document"]
    data = json.loads(payload)
    assert filename == "mydata.json"
    assert data["profile"]["name"] == "Asha Devi" and data["profile"]["phone"] == "+919876543210"
    assert data["clusters"][0]["cluster"] == "Moradabad Brassware"
    assert data["profile"]["consent_given_at"] and any(a["action"] == "stakeholder.register" for a in data["activity_log"])


async def test_forget_erases_personal_data(user_factory, sessionmaker):
    user, _ = await registered(user_factory, sessionmaker, language_code="hi")
    await user.send("/forget")
    await user.click(tr("en", "No, keep it"))
    assert (await rows_about(sessionmaker, USER))["stakeholder"] == 1
    await user.send("/forget")
    await user.click(tr("en", "Yes, erase my data"))
    assert await rows_about(sessionmaker, USER) == {
        "stakeholder": 0, "membership": 0, "dialog_state": 0, "user_preference": 0}
    async with sessionmaker() as session:
        assert (await session.exec(select(Stakeholder).where(Stakeholder.name == "Asha Devi"))).first() is None
        assert (await session.exec(select(Stakeholder).where(Stakeholder.phone == "+919876543210"))).first() is None
        assert (await session.exec(select(Membership))).all() == []
        assert (await session.exec(select(AuditEntry).where(AuditEntry.actor_user_id == USER))).all() == []
    await user.send("/mydata")
    payload = json.loads(next(c for c in user.replies if c.method == "sendDocument").files["document"][1])
    assert set(payload) == {"telegram_user_id", "exported_at", "activity_log", "messages_sent_to_you"}
    assert payload["activity_log"] == [] and payload["messages_sent_to_you"] == []
    await user.send("/forget")
    # Forgotten: the language picked is gone too, so Telegram's language_code (hi) is used again.
    assert user.last_text() == tr("hi", "We keep no personal data about you.")


async def test_help_depends_on_role(user_factory, sessionmaker):
    from tests.conftest import CDA_ID

    user, _ = await registered(user_factory, sessionmaker)
    await user.send("/help")
    assert "/profile" in user.last_text() and "/invite" not in user.last_text()
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/help")
    assert "/invite" in cda.last_text() and "/stakeholders" in cda.last_text()
