"""The action plan in chat: a CDA creates, edits, announces and hands over an activity; a
coordinator sends a notice and sees RSVPs and reports and nothing else; /activities for everyone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlmodel import select

from bot.i18n import Translator
from bot.services import activities
from models import Activity, ActivityPerson, AuditEntry, Meeting, MeetingInvite, OutboxMessage
from models.base import utcnow
from tests.conftest import CDA_ID
from tests.helpers import make_cluster, tr
from tests.survey_helpers import add_member

ASHA, MURUGAN, JOHN, RAVI = 6_100_001, 6_100_002, 6_100_003, 6_100_004


async def setup_cluster(sessionmaker, **kwargs):
    cluster = await make_cluster(sessionmaker, **kwargs)
    members = {
        "asha": await add_member(sessionmaker, cluster, ASHA, "आशा देवी", "hi", enterprise="आशा ब्रास"),
        "murugan": await add_member(sessionmaker, cluster, MURUGAN, "முருகன்", "ta", enterprise="Murugan Knits"),
        "john": await add_member(sessionmaker, cluster, JOHN, "John Mathew", "en", role="bank"),
        "ravi": await add_member(sessionmaker, cluster, RAVI, "Ravi Kumar", "hi"),
    }
    return cluster, members


async def all_rows(sessionmaker, model, *where):
    async with sessionmaker() as session:
        return list((await session.exec(select(model).where(*where))).all())


def sent_to(api, chat_id: int) -> list[str]:
    return [message.get("text") or "" for (chat, _), message in api.messages.items() if chat == chat_id]


def t_of(language: str) -> Translator:
    return Translator(language)


async def test_cda_creates_edits_announces_and_hands_over(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    next_year = utcnow().year + 1

    await cda.send("/activity")
    assert "Moradabad Brassware" in cda.last_text()
    await cda.click("➕ New activity")
    await cda.send("1800")
    assert "Please write a year between 2000 and 2100." in cda.last_text()
    assert str(next_year) in cda.buttons()  # the question is asked again, with its buttons
    await cda.send(str(next_year))
    await cda.send("x" * 250)
    assert "Please keep it under 200 characters." in cda.last_text()
    await cda.send("Lean manufacturing training")
    await cda.send("training")  # typed where a button is expected
    assert cda.last_text() == "Please use the buttons below." or "Please use the buttons below." in " ".join(cda.texts())
    await cda.click("Training")
    await cda.send("Two days on lean methods, with a visit to a model unit.")
    await cda.send(f"31/02/{next_year}")
    assert "Please write the date as day/month/year" in cda.last_text()
    await cda.send(f"10/03/{next_year}")
    await cda.send(f"01/03/{next_year}")
    assert "The due date is before the start date" in cda.last_text()
    await cda.send(f"12/03/{next_year}")
    await cda.click("Skip")  # venue
    await cda.send("20 firms trained")
    # Leads: a member picker with ✅ toggles and search.
    assert "▫️ आशा देवी (आशा ब्रास)" in cda.buttons()
    await cda.click("आशा देवी")
    assert "✅ आशा देवी (आशा ब्रास)" in cda.buttons()
    await cda.send("zzz")
    assert "Nobody found with that name" in cda.last_text()
    await cda.send("john")
    assert cda.buttons()[0] == "▫️ John Mathew"
    await cda.click("John Mathew")
    await cda.click("Done ✔")
    await cda.click("முருகன்")
    await cda.click("Done ✔")
    assert "Please check the new activity:" in cda.last_text()
    assert "Lean manufacturing training" in cda.last_text()
    await cda.click("✅ Save")
    assert "The activity is saved" in cda.last_text()

    [activity] = await all_rows(sessionmaker, Activity)
    assert activity.title == {"en": "Lean manufacturing training"}
    assert activity.year == next_year and activity.category == "training"
    assert activity.start_date == date(next_year, 3, 10) and activity.due_date == date(next_year, 3, 12)
    assert activity.venue is None and activity.target == "20 firms trained" and activity.status == "planned"
    people = {(p.stakeholder_id, p.role) for p in await all_rows(sessionmaker, ActivityPerson)}
    assert people == {
        (members["asha"].id, "lead"), (members["john"].id, "lead"), (members["murugan"].id, "participant"),
    }

    # A Hindi title, then a changed venue.
    await cda.click("✏️ Edit")
    await cda.click("🌐 Title in another language")
    await cda.click("हिन्दी")
    await cda.send("लीन विनिर्माण प्रशिक्षण")
    await cda.click("✏️ Edit")
    await cda.click("Venue")
    await cda.send("MSME-DFO hall, Moradabad")
    assert "✅ Saved." in cda.last_text()
    [activity] = await all_rows(sessionmaker, Activity)
    assert activity.title == {"en": "Lean manufacturing training", "hi": "लीन विनिर्माण प्रशिक्षण"}
    assert activity.venue == "MSME-DFO hall, Moradabad"

    # Announce to everyone: each recipient reads it in their language.
    await cda.click("📢 Announce")
    await cda.click("Everyone in the cluster")
    assert "4 people" in cda.last_text() and "Lean manufacturing training" in cda.last_text()
    await cda.click("📤 Send")
    assert "The announcement is on its way to 4 people." in cda.last_text()
    await app.deps.extra["sender"].drain()
    hindi = t_of("hi")
    asha_text = sent_to(api, ASHA)[-1]
    assert hindi("📅 <b>Activity: {title}</b>").format(title="लीन विनिर्माण प्रशिक्षण") in asha_text
    assert hindi("Category: {category}").format(category=hindi("Training")) in asha_text
    assert hindi.date(date(next_year, 3, 10), "medium") in asha_text
    tamil = t_of("ta")
    murugan_text = sent_to(api, MURUGAN)[-1]
    # No Tamil title: the cluster's language (English here) is the fallback.
    assert tamil("📅 <b>Activity: {title}</b>").format(title="Lean manufacturing training") in murugan_text
    assert tamil("Category: {category}").format(category=tamil("Training")) in murugan_text
    rows = await all_rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "activity_announce")
    assert len(rows) == 4 and all(row.status == "sent" for row in rows)

    # Status, then hand-over to John, who is told and gets the coordinator's menu.
    await cda.click("🔄 Status")
    await cda.click("In progress")
    [activity] = await all_rows(sessionmaker, Activity)
    assert activity.status == "in_progress"
    await cda.click("🧭 Hand over")
    await cda.send("john")
    await cda.click("John Mathew")
    assert "John Mathew now coordinates this activity" in cda.last_text()
    coordinators = await all_rows(sessionmaker, ActivityPerson, ActivityPerson.role == "coordinator")
    assert [c.stakeholder_id for c in coordinators] == [members["john"].id]
    await app.deps.extra["sender"].drain()
    assert "You are now the coordinator of “Lean manufacturing training”" in sent_to(api, JOHN)[-1]
    menu = [c for c in api.calls if c.method == "setMyCommands" and c.params.get("scope", {}).get("chat_id") == JOHN]
    assert "activity" in [command["command"] for command in menu[-1].params["commands"]]

    # Cancelling asks first.
    await cda.click("❌ Cancel the activity")
    await cda.click("Yes, cancel it")
    [activity] = await all_rows(sessionmaker, Activity)
    assert activity.status == "cancelled"
    actions = [entry.action for entry in await all_rows(sessionmaker, AuditEntry)]
    for action in ("activity.create", "activity.update", "activity.announce", "activity.status", "activity.coordinator"):
        assert action in actions


async def make_activity(sessionmaker, cluster, title: str, *, leads=(), participants=(), **kwargs) -> Activity:
    async with sessionmaker() as session:
        return await activities.create_activity(
            session, cluster_id=cluster.id, year=kwargs.pop("year", utcnow().year), title={"en": title},
            leads=leads, participants=participants, actor_user_id=CDA_ID, **kwargs,
        )


async def hand_over(sessionmaker, activity, stakeholder):
    async with sessionmaker() as session:
        fresh = await session.get(Activity, activity.id)
        await activities.set_coordinator(session, activity=fresh, stakeholder_id=stakeholder.id, actor_user_id=CDA_ID)


async def test_coordinator_sends_notice_sees_rsvps_and_nothing_else(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    mine = await make_activity(sessionmaker, cluster, "Joint stall at the trade fair", leads=[members["asha"].id],
                               participants=[members["murugan"].id, members["ravi"].id], category="joint_marketing")
    second = await make_activity(sessionmaker, cluster, "Bank credit camp", participants=[members["ravi"].id])
    other = await make_activity(sessionmaker, cluster, "Common testing lab")
    await hand_over(sessionmaker, mine, members["john"])
    await hand_over(sessionmaker, second, members["john"])
    async with sessionmaker() as session:
        meeting = Meeting(cluster_id=cluster.id, activity_id=mine.id, title="Stall planning",
                          starts_at=utcnow() + timedelta(days=3))
        session.add(meeting)
        await session.flush()
        session.add(MeetingInvite(meeting_id=meeting.id, stakeholder_id=members["asha"].id, response="yes"))
        session.add(MeetingInvite(meeting_id=meeting.id, stakeholder_id=members["murugan"].id, response="maybe"))
        session.add(MeetingInvite(meeting_id=meeting.id, stakeholder_id=members["ravi"].id))
        await session.commit()

    john = user_factory(JOHN, language_code="en")
    await john.send("/activity")
    assert john.last_text() == "The activities handed over to you:"
    assert set(john.buttons()) == {"Joint stall at the trade fair", "Bank credit camp"}

    # A forged button for an activity that is not his: refused and logged, nothing shown.
    list_message, _ = john.find_button("Bank credit camp")
    await john.press(f"act:list:o{other.id}", list_message)
    assert john.alerts() == ["Sorry, you cannot do that for this activity."]
    assert not [c for c in john.replies if c.method == "sendMessage"]
    refusals = await all_rows(sessionmaker, AuditEntry, AuditEntry.action == "refused", AuditEntry.actor_user_id == JOHN)
    assert [r.subject for r in refusals] == [f"activity:{other.id}"]

    await john.click("Joint stall at the trade fair")
    assert set(john.buttons()) == {"✉️ Notice to participants", "🗳 RSVPs", "📝 Reports", "◀ Back"}
    # A CDA-only action forged from his card is refused too.
    card, _ = john.find_button("🗳 RSVPs")
    await john.press("act:card:status", card)
    assert john.alerts() == ["Sorry, you cannot do that for this activity."]
    async with sessionmaker() as session:
        assert (await session.get(Activity, mine.id)).status == "planned"

    await john.click("🗳 RSVPs")
    rsvp_text = next(text for text in john.texts() if "Stall planning" in text)
    assert "Yes: 1 · No: 0 · Maybe: 1 · Not answered: 1" in rsvp_text
    assert "• आशा देवी: Yes" in rsvp_text and "• Ravi Kumar: not answered" in rsvp_text

    await john.click("✉️ Notice to participants")
    await john.send("Please bring samples <b>by Friday</b>.")
    assert "3 people" in john.last_text()
    await john.click("📤 Send")
    assert "Your notice is on its way to 3 people." in john.last_text()
    await app.deps.extra["sender"].drain()
    hindi, tamil = t_of("hi"), t_of("ta")
    expected_hi = hindi("📢 <b>Notice about “{title}”</b> from {name}:").format(title="Joint stall at the trade fair", name="John Mathew")
    assert expected_hi in sent_to(api, ASHA)[-1]
    assert "Please bring samples &lt;b&gt;by Friday&lt;/b&gt;." in sent_to(api, ASHA)[-1]  # user text escaped
    expected_ta = tamil("📢 <b>Notice about “{title}”</b> from {name}:").format(title="Joint stall at the trade fair", name="John Mathew")
    assert expected_ta in sent_to(api, MURUGAN)[-1]
    notices = await all_rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "activity_notice")
    assert sorted(n.chat_id for n in notices) == sorted([ASHA, MURUGAN, RAVI])
    actions = [e.action for e in await all_rows(sessionmaker, AuditEntry, AuditEntry.actor_user_id == JOHN)]
    assert "activity.notice" in actions and "activity.rsvps.view" in actions


async def test_announce_to_one_language_or_to_the_people_on_it(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    activity = await make_activity(sessionmaker, cluster, "Credit camp", leads=[members["john"].id],
                                   participants=[members["murugan"].id], category="credit_finance")
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/activity")
    await cda.click("Credit camp")
    await cda.click("📢 Announce")
    await cda.click("One language")
    await cda.click("हिन्दी")
    assert "To: 2 people" in cda.last_text()
    await cda.click("📤 Send")
    await cda.click("📢 Announce")
    await cda.click("One role")
    await cda.click("Bank or financial institution")
    assert "To: 1 person" in cda.last_text()
    await cda.click("Cancel")
    assert "Cancelled. Nothing was sent." in cda.last_text()
    await cda.click("📢 Announce")
    await cda.click("The people on this activity")
    await cda.click("📤 Send")
    await app.deps.extra["sender"].drain()
    rows = await all_rows(sessionmaker, OutboxMessage, OutboxMessage.purpose == "activity_announce")
    assert sorted(r.chat_id for r in rows) == sorted([ASHA, RAVI, JOHN, MURUGAN])
    assert all(r.ref_id == activity.id and r.status == "sent" for r in rows)
    hindi = t_of("hi")
    assert hindi("Category: {category}").format(category=hindi("Credit and finance")) in sent_to(api, RAVI)[-1]


async def test_stakeholder_is_refused_everywhere(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    activity = await make_activity(sessionmaker, cluster, "Exposure visit to Jaipur", leads=[members["asha"].id])
    asha = user_factory(ASHA)
    await asha.send("/activity")
    assert asha.last_text() == tr("hi", "Sorry, only the CDA of a cluster can use this command.")
    # Forged buttons of the CDA's dialog do nothing either.
    message = {"message_id": 1, "chat": {"id": ASHA, "type": "private"}, "date": 0, "text": "x"}
    for data in (f"act:list:o{activity.id}", "act:card:notice", "act:card:status"):
        await asha.press(data, message)
        assert asha.alerts() == [tr("hi", "Sorry, you cannot do that for this activity.")]
    async with sessionmaker() as session:
        assert (await session.get(Activity, activity.id)).status == "planned"
    refusals = await all_rows(sessionmaker, AuditEntry, AuditEntry.action == "refused", AuditEntry.actor_user_id == ASHA)
    assert len(refusals) == 4


async def test_member_picker_pages_searches_and_keeps_choices(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    for n in range(10):
        await add_member(sessionmaker, cluster, 6_150_000 + n, f"Member {n:02d}", "en")
    activity = await make_activity(sessionmaker, cluster, "Energy audit", leads=[members["asha"].id])
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/activity")
    await cda.click("Energy audit")
    await cda.click("👥 Leads")
    assert "1 chosen" in cda.last_text()
    assert "▫️ Member 00" in cda.buttons() and "▶" in cda.buttons()
    await cda.click("▶")
    assert "◀" in cda.buttons() and "✅ आशा देवी (आशा ब्रास)" in cda.buttons()
    await cda.click("आशा देवी")  # unpick
    await cda.send("member 0")
    assert "Search: member 0" in cda.last_text()
    await cda.click("Member 07")
    await cda.click("✖ Clear the search")
    assert "▫️ John Mathew" in cda.buttons() and "1 chosen" in cda.last_text()
    await cda.click("Done ✔")
    leads = await all_rows(sessionmaker, ActivityPerson, ActivityPerson.activity_id == activity.id)
    member_07 = await all_rows(sessionmaker, type(members["asha"]), type(members["asha"]).name == "Member 07")
    assert [(p.stakeholder_id, p.role) for p in leads] == [(member_07[0].id, "lead")]


async def test_stale_button_shows_the_current_step(app, api, sessionmaker, user_factory):
    await setup_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/activity")
    list_message, new_data = cda.find_button("➕ New activity")
    await cda.click("➕ New activity")
    await cda.send(str(utcnow().year))
    await cda.press(new_data, list_message)
    assert cda.alerts() == ["This question is no longer open."]
    assert "What is the activity called?" in cda.last_text()


async def test_activities_lists_what_is_relevant_in_the_users_language(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker, language="hi")
    soon = utcnow().date() + timedelta(days=5)
    led = await make_activity(sessionmaker, cluster, "Lean training", leads=[members["asha"].id],
                              participants=[members["murugan"].id], start_date=soon, due_date=soon + timedelta(days=1),
                              venue="Town hall")
    async with sessionmaker() as session:
        fresh = await session.get(Activity, led.id)
        await activities.update_activity(session, activity=fresh, changes={"title": {"en": "Lean training", "hi": "लीन प्रशिक्षण"}}, actor_user_id=CDA_ID)
    await make_activity(sessionmaker, cluster, "Cluster-wide fair", start_date=soon + timedelta(days=10))
    await make_activity(sessionmaker, cluster, "Bank camp for others", participants=[members["ravi"].id], start_date=soon)
    await make_activity(sessionmaker, cluster, "Old visit", due_date=utcnow().date() - timedelta(days=30))
    await make_activity(sessionmaker, cluster, "Cancelled fair", status="cancelled", start_date=soon)
    starts = datetime.combine(soon + timedelta(days=2), time(5, 30), tzinfo=utcnow().tzinfo)
    async with sessionmaker() as session:
        meeting = Meeting(cluster_id=cluster.id, title="Trust-building meeting", starts_at=starts, venue="Association office")
        session.add(meeting)
        past = Meeting(cluster_id=cluster.id, title="Last month's meeting", starts_at=utcnow() - timedelta(days=30))
        session.add(past)
        await session.flush()
        session.add(MeetingInvite(meeting_id=meeting.id, stakeholder_id=members["asha"].id, response="maybe"))
        session.add(MeetingInvite(meeting_id=past.id, stakeholder_id=members["asha"].id, response="yes"))
        await session.commit()

    asha = user_factory(ASHA)
    await asha.send("/activities")
    text = asha.last_text()
    hindi = t_of("hi")
    assert "लीन प्रशिक्षण" in text and "Cluster-wide fair" in text and "Trust-building meeting" in text
    for absent in ("Bank camp for others", "Old visit", "Cancelled fair", "Last month's meeting"):
        assert absent not in text
    assert hindi("You: {roles}").format(roles=hindi("Lead")) in text
    assert hindi("Your answer: {answer}").format(answer=hindi("Maybe")) in text
    assert hindi.datetime(starts, "medium") in text  # the cluster's time zone, the Hindi locale
    assert text.index("लीन प्रशिक्षण") < text.index("Trust-building meeting") < text.index("Cluster-wide fair")

    murugan = user_factory(MURUGAN)
    await murugan.send("/activities")
    tamil = t_of("ta")
    # No Tamil title: the cluster's language (Hindi) is the fallback.
    assert "லீன" not in murugan.last_text() and "लीन प्रशिक्षण" in murugan.last_text()
    assert tamil("You: {roles}").format(roles=tamil("Participant")) in murugan.last_text()
    assert "Trust-building meeting" not in murugan.last_text()

    stranger = user_factory(6_199_999, language_code="ta")
    await stranger.send("/activities")
    assert stranger.last_text() == tr("ta", "You are not registered yet. Please open the invite link your CDA shared with you.")
