"""Every kind of bad input gets a clear message in the user's language and the question again."""

from __future__ import annotations

from sqlmodel import select

from models import DialogState
from tests.helpers import make_cluster, rows_about, tr

USER = 5_550_002


async def begin(user, cluster, lang="hi", label="हिन्दी"):
    await user.send(f"/start {cluster.invite_code}")
    await user.click(label)
    await user.click(tr(lang, "I agree"))


async def test_text_where_a_button_is_expected(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="hi")
    await begin(user, cluster)
    await user.send("आशा")
    await user.send("मैं दुकानदार हूँ")  # typed instead of pressing a role button
    assert user.last_text().startswith(tr("hi", "Please use the buttons below."))
    assert tr("hi", "Which of these describes you best?") in user.last_text()
    assert tr("hi", "MSME owner") in user.buttons()
    async with sessionmaker() as session:
        state = await session.get(DialogState, USER)
    assert state.step == "role" and state.data["answers"] == {"name": "आशा"}


async def test_over_long_and_empty_names_are_asked_again(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="ta")
    await begin(user, cluster, "ta", "தமிழ்")
    await user.send("அ" * 101)
    assert user.last_text().startswith(tr("ta", "Please keep it under 100 characters."))
    assert tr("ta", "What is your name?") in user.last_text()
    await user.send("   ")
    assert user.last_text().startswith(tr("ta", "Please write an answer; it cannot be empty."))
    await user.send("அ" * 100)
    assert tr("ta", "Which of these describes you best?") in user.last_text()


async def test_stale_button_is_answered_and_current_step_shown(user_factory, sessionmaker, api):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="hi")
    await user.send(f"/start {cluster.invite_code}")
    language_message, data = user.find_button("हिन्दी")
    language_message = dict(language_message)
    await user.click("हिन्दी")
    await user.click(tr("hi", "I agree"))
    await user.send("आशा")
    # Press the language button of the first message again (Telegram apps keep old messages).
    await user.press(data, language_message)
    assert user.alerts() == [tr("hi", "This question is no longer open.")]
    assert tr("hi", "Which of these describes you best?") in user.last_text()
    async with sessionmaker() as session:
        state = await session.get(DialogState, USER)
    assert state.step == "role" and state.data["answers"]["name"] == "आशा"


async def test_forged_callback_data_is_refused(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="en")
    await begin(user, cluster, "en", "English")
    await user.send("Asha")
    message, _ = user.find_button("MSME owner")
    await user.press("reg:role:superuser", message)
    assert user.alerts() == ["This question is no longer open."]
    async with sessionmaker() as session:
        state = await session.get(DialogState, USER)
    assert state.step == "role" and "role" not in state.data["answers"]


async def test_someone_elses_contact_is_refused(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="hi")
    await begin(user, cluster)
    await user.send("आशा")
    await user.click(tr("hi", "Other"))
    await user.send("कृषि")
    await user.share_contact("+919999999999", owner=USER + 1)
    assert user.last_text().startswith(tr("hi", "That is someone else's contact. You can only share your own number."))
    assert tr("hi", "Share my phone number") in user.reply_keyboard()
    await user.send("9876543210")  # typed numbers are not accepted either: only the user's own contact
    assert tr("hi", "Share my phone number") in user.reply_keyboard()
    async with sessionmaker() as session:
        state = await session.get(DialogState, USER)
    assert state.step == "phone" and "phone" not in state.data["answers"]


async def test_long_or_malformed_start_payload_is_unknown(user_factory, sessionmaker):
    await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="ta")
    for payload in ("x" * 200, "abc", "bad code!!", "../../etc"):
        await user.send(f"/start {payload}")
        assert user.last_text() == tr("ta", "This invite link is not valid. Please check that you copied the whole link, or ask your CDA for a new one.")
    assert await rows_about(sessionmaker, USER) == {
        "stakeholder": 0, "membership": 0, "dialog_state": 0, "user_preference": 0}


async def test_start_without_code_explains_the_invite_link(user_factory):
    user = user_factory(USER, language_code="gu")
    await user.send("/start")
    assert user.last_text() == tr("gu", "Hello! This bot connects the members of an industrial cluster with their Cluster Development Agent (CDA).\n\nTo join, please open the invite link or scan the QR code that your CDA shared with you.")


async def test_stakeholder_cannot_use_cda_commands(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="hi")
    await begin(user, cluster)
    await user.send("आशा")
    await user.click(tr("hi", "Other"))
    await user.send("कृषि")
    await user.send(tr("hi", "Skip"))
    await user.click(tr("hi", "✅ Confirm"))
    for command in ("/broadcast", "/invite", "/stakeholders", "/stats"):
        await user.send(command)
        assert user.last_text() == tr("hi", "Sorry, only the CDA of a cluster can use this command.")
    # A forged stakeholders-page button is refused on the server too.
    message = user.bot_messages()[-1]
    await user.press(f"stk:{cluster.id}:0", message)
    assert user.alerts() == [tr("hi", "Sorry, only the CDA of a cluster can use this command.")]


async def test_cancel_leaves_the_flow_and_keeps_saved_data(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    user = user_factory(USER, language_code="en")
    await begin(user, cluster, "en", "English")
    await user.send("/cancel")
    assert "Nothing was saved" in user.last_text()
    assert (await rows_about(sessionmaker, USER))["dialog_state"] == 0
    async with sessionmaker() as session:
        assert (await session.exec(select(DialogState))).first() is None
