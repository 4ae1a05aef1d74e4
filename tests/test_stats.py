"""/stats: the dashboard's figures against a cluster whose answers are known, in the service and
in chat; permissions on every button."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlmodel import select

from bot.i18n import Translator
from bot.services import network, stats
from bot.services.clusters import add_cda
from bot.services.stakeholders import register
from bot.services.surveys import service as surveys
from models import (
    Activity,
    AuditEntry,
    Broadcast,
    Cluster,
    CompletionReport,
    LinkageEdge,
    Meeting,
    MeetingInvite,
    Membership,
    OutboxMessage,
    Stakeholder,
    Survey,
    SurveyLaunch,
    SurveyResponse,
)
from models.base import utcnow
from tests.conftest import CDA_ID
from tests.helpers import make_cluster, tr

BASE_ID = 8_100_000
OTHER_CDA = 900_000_077

# name, role, language, enterprise, days since joining
PEOPLE = (
    ("Asha", "msme_owner", "hi", "Asha Brass Works", 90),
    ("Bala", "msme_owner", "ta", "Bala Metals", 90),
    ("Chitra", "msme_owner", "hi", None, 90),
    ("Dena Bank", "bank", "en", None, 10),
    ("Eklavya Institute", "support_institution", "hi", None, 10),
    ("Farid", "other", "en", None, 5),
)


@dataclass
class Known:
    cluster: Cluster
    ids: dict[str, int]
    trust_waves: tuple[SurveyLaunch, SurveyLaunch]
    feedback: SurveyLaunch
    today: date


async def _launch(session, survey: Survey) -> SurveyLaunch:
    launch, _ = await surveys.create_launch(
        session, survey=survey, audience=surveys.Audience(), closes_at=utcnow() + timedelta(days=7), created_by=CDA_ID
    )
    return launch


async def _respond(session, launch: SurveyLaunch, person: Stakeholder | None, answers: dict, *, user_id: int,
                   anonymous: bool = False, completed: bool = True) -> SurveyResponse:
    salt = await surveys.respondent_salt(session)
    response = SurveyResponse(
        launch_id=launch.id, survey_id=launch.survey_id,
        stakeholder_id=None if anonymous else person.id,
        respondent_key=surveys.respondent_key(salt, launch.id, user_id), answers=answers,
        status="completed" if completed else "in_progress", current=None if completed else "joint_activities",
        completed_at=utcnow() if completed else None,
    )
    session.add(response)
    await session.flush()
    return response


async def build_known_cluster(sessionmaker, *, name: str = "Moradabad Brassware") -> Known:
    """Six members, two trust & linkage rounds, a feedback round, five activities, reports,
    meetings and deliveries, with every figure worked out by hand in the tests below."""
    cluster = await make_cluster(sessionmaker, name=name)
    people: dict[str, Stakeholder] = {}
    for number, (person, role, language, enterprise, _days) in enumerate(PEOPLE, start=1):
        async with sessionmaker() as session:
            people[person] = await register(
                session, telegram_user_id=BASE_ID + number, chat_id=BASE_ID + number, cluster_id=cluster.id,
                answers={"name": person, "role": role, "product": "brass", "enterprise": enterprise},
                language=language, consent_at=utcnow(),
            )
    ids = {person: stakeholder.id for person, stakeholder in people.items()}
    user = {person: BASE_ID + number for number, (person, *_) in enumerate(PEOPLE, start=1)}
    today = stats.local_today(cluster)
    async with sessionmaker() as session:
        for person, *_, days in PEOPLE:
            membership = (await session.exec(select(Membership).where(Membership.stakeholder_id == ids[person]))).one()
            membership.joined_at = utcnow() - timedelta(days=days)
            session.add(membership)
        farid = await session.get(Stakeholder, ids["Farid"])
        farid.status = "unreachable"
        session.add(farid)
        await session.commit()

        installed = {survey.form_id: survey for survey in await surveys.install_templates(session, cluster=cluster)}
        trust = installed["trust_linkage"]
        # Round 1: five invited (Farid is unreachable), four answer; Eklavya stops half-way.
        first = await _launch(session, trust)
        wave1 = {"Asha": (2, 2, [ids["Bala"], ids["Dena Bank"]]), "Bala": (3, 2, []), "Chitra": (4, 3, []),
                 "Dena Bank": (3, 1, [])}
        for person, (firms, institutions, works_with) in wave1.items():
            response = await _respond(session, first, people[person], {
                "trust_firms": firms, "trust_institutions": institutions, "joint_activities": 1, "works_with": works_with,
            }, user_id=user[person])
            for target in works_with:
                session.add(LinkageEdge(cluster_id=cluster.id, launch_id=first.id, response_id=response.id,
                                        question="works_with", source_stakeholder_id=ids[person], target_stakeholder_id=target))
        await _respond(session, first, people["Eklavya Institute"], {"trust_firms": 5}, user_id=user["Eklavya Institute"], completed=False)
        # Round 2: three answer; Asha and Bala both name each other (one tie), Eklavya names Chitra.
        second = await _launch(session, trust)
        wave2 = {"Asha": (4, 3, [ids["Bala"], ids["Dena Bank"]]), "Bala": (4, 4, [ids["Asha"]]),
                 "Eklavya Institute": (5, 2, [ids["Chitra"]])}
        for person, (firms, institutions, works_with) in wave2.items():
            response = await _respond(session, second, people[person], {
                "trust_firms": firms, "trust_institutions": institutions, "joint_activities": 2, "works_with": works_with,
            }, user_id=user[person])
            for target in works_with:
                session.add(LinkageEdge(cluster_id=cluster.id, launch_id=second.id, response_id=response.id,
                                        question="works_with", source_stakeholder_id=ids[person], target_stakeholder_id=target))
        feedback = await _launch(session, installed["activity_feedback"])
        feedback_answers = {"Asha": {"usefulness": 4, "take_part_again": "yes"},
                            "Chitra": {"usefulness": 5, "take_part_again": "maybe", "suggestions": "More training"}}
        for person, answers in feedback_answers.items():
            await _respond(session, feedback, None, answers, user_id=user[person], anonymous=True)
        await session.commit()

        def activity(title: str, status: str, due: int, completed: int | None = None) -> Activity:
            return Activity(
                cluster_id=cluster.id, year=today.year, title={"en": title, "hi": title + " (hi)"}, status=status,
                due_date=today + timedelta(days=due),
                completed_on=today + timedelta(days=completed) if completed is not None else None,
            )

        activities = [
            activity("Training on polishing", "done", -10, -12),
            activity("Joint stall at the fair", "done", -20, -15),
            activity("Bank credit camp", "planned", -3),
            activity("Testing lab visit", "in_progress", 10),
            activity("Old plan", "cancelled", -30),
        ]
        session.add_all(activities)
        await session.flush()
        session.add_all([
            CompletionReport(activity_id=activities[0].id, stakeholder_id=ids["Asha"], state="submitted", status="done",
                             progress=100, done_text="Trained 12 people", participants=12,
                             photo_file_ids=["photo-a", "photo-b"], submitted_at=utcnow(), verified_at=utcnow(), verified_by=CDA_ID),
            CompletionReport(activity_id=activities[1].id, stakeholder_id=ids["Bala"], state="submitted", status="done",
                             progress=100, done_text="Stall set up", participants=4, submitted_at=utcnow()),
            CompletionReport(activity_id=activities[3].id, stakeholder_id=ids["Chitra"], state="draft", step="progress"),
        ])
        meeting = Meeting(cluster_id=cluster.id, title="Cluster meeting",
                          starts_at=datetime.combine(today + timedelta(days=5), time(10, 0), UTC), venue="Association hall")
        cancelled = Meeting(cluster_id=cluster.id, title="Called off", status="cancelled",
                            starts_at=datetime.combine(today + timedelta(days=8), time(10, 0), UTC))
        session.add_all([meeting, cancelled])
        await session.flush()
        replies = {"Asha": "yes", "Bala": "yes", "Chitra": "no", "Dena Bank": "maybe", "Eklavya Institute": None}
        for person, reply in replies.items():
            session.add(MeetingInvite(meeting_id=meeting.id, stakeholder_id=ids[person], response=reply,
                                      responded_at=utcnow() if reply else None))
            session.add(MeetingInvite(meeting_id=cancelled.id, stakeholder_id=ids[person], response="no"))
        notice = Broadcast(cluster_id=cluster.id, texts={"default": "Notice"}, status="done", recipients=2)
        session.add(notice)
        await session.flush()
        session.add_all([
            OutboxMessage(chat_id=user["Asha"], stakeholder_id=ids["Asha"], text="Notice", purpose="broadcast",
                          ref_id=notice.id, status="sent", attempts=1, sent_at=utcnow(), telegram_message_id=5),
            OutboxMessage(chat_id=user["Farid"], stakeholder_id=ids["Farid"], text="Notice", purpose="broadcast",
                          ref_id=notice.id, status="skipped", attempts=1, last_error="Forbidden: bot was blocked by the user"),
        ])
        await session.commit()
    return Known(cluster, ids, (first, second), feedback, today)


# ---------------------------------------------------------------- the service


async def test_dashboard_figures_match_the_known_answers(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    async with sessionmaker() as session:
        board = await stats.dashboard(session, cluster=known.cluster)

    members = board.members
    assert members.total == 6 and members.unreachable == 1
    assert members.unreachable_share == pytest.approx(1 / 6)
    assert members.by_role == {"msme_owner": 3, "bank": 1, "support_institution": 1, "other": 1}
    assert members.by_language == {"hi": 3, "en": 2, "ta": 1}
    assert members.joined_recently == 3
    assert sum(count for _, count in members.joined_by_month) == 6
    assert members.joined_by_month[-1][0] == known.today.replace(day=1)

    rates = {(rate.form_id, rate.wave): (rate.invited, rate.completed) for rate in board.surveys}
    assert rates == {("trust_linkage", 1): (5, 4), ("trust_linkage", 2): (5, 3), ("activity_feedback", 1): (5, 2)}

    plan = board.plan
    assert plan.by_status == {"planned": 1, "in_progress": 1, "done": 2, "cancelled": 1}
    assert plan.on_time_share == pytest.approx(0.5)
    assert plan.overdue_count == 1 and plan.overdue[0].title["en"] == "Bank credit camp"
    assert (plan.reports_received, plan.reports_verified) == (2, 1)

    [meeting] = board.meetings
    assert (meeting.title, meeting.invited, meeting.yes, meeting.no, meeting.maybe, meeting.no_reply) == (
        "Cluster meeting", 5, 2, 1, 1, 1)

    first, second = board.trust
    assert (first.wave, first.respondents) == (1, 4)
    assert first.means == pytest.approx({"trust_firms": 3.0, "trust_institutions": 2.0})
    assert first.index == pytest.approx(2.5) and first.change is None
    assert second.means == pytest.approx({"trust_firms": 13 / 3, "trust_institutions": 3.0})
    assert second.index == pytest.approx(22 / 6)
    assert second.change == pytest.approx(22 / 6 - 2.5) == second.change_from_baseline

    one, two = board.network
    assert (one.members, one.ties, one.firms, one.firms_linked) == (6, 2, 3, 1)
    assert one.density == pytest.approx(2 / 15)
    assert (two.ties, two.firms_linked, two.ties_change) == (3, 2, 1)
    assert two.density == pytest.approx(3 / 15) and two.share_change == pytest.approx(1 / 3)
    assert [(c.name, c.degree) for c in two.most_connected] == [
        ("Asha", 2), ("Bala", 1), ("Chitra", 1), ("Dena Bank", 1), ("Eklavya Institute", 1)]


async def test_figures_stay_inside_the_cluster(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    other = await build_known_cluster_like(sessionmaker)
    async with sessionmaker() as session:
        board = await stats.dashboard(session, cluster=known.cluster)
        elsewhere = await stats.dashboard(session, cluster=other)
    assert board.members.total == 6 and elsewhere.members.total == 1
    assert elsewhere.surveys == [] and elsewhere.trust == [] and elsewhere.network == []
    assert elsewhere.plan.total == 0 and elsewhere.meetings == []


async def build_known_cluster_like(sessionmaker) -> Cluster:
    cluster = await make_cluster(sessionmaker, name="Firozabad Glass")
    async with sessionmaker() as session:
        await register(session, telegram_user_id=BASE_ID + 99, chat_id=BASE_ID + 99, cluster_id=cluster.id,
                       answers={"name": "Gopal", "role": "msme_owner", "product": "glass"}, language="hi",
                       consent_at=utcnow())
    return cluster


def test_network_counts_a_tie_once_and_ignores_self_picks():
    members = {1: network.Member("A", "msme_owner"), 2: network.Member("B", "bank"), 3: network.Member("C", "msme_owner")}
    wave = network.WaveEdges("f", {}, "en", 1, [(1, 2), (2, 1), (3, 3)])
    figures = network.measure_wave(members, wave)
    assert (figures.ties, figures.firms, figures.firms_linked) == (1, 2, 1)
    assert figures.density == pytest.approx(1 / 3)


# ---------------------------------------------------------------- in chat


def _expected_dashboard_lines(language: str, known: Known) -> list[str]:
    t = Translator(language)
    title = "भरोसा और मिलकर काम" if language == "hi" else "Trust and working together"
    meeting_day = t.date(datetime.combine(known.today + timedelta(days=5), time(10, 0), UTC), "medium")
    return [
        tr(language, "Members: {count}", count="6"),
        tr(language, "Unreachable: {count} ({share})", count="1", share="17%"),
        tr(language, "New in the last 30 days: {count}", count="3"),
        tr(language, "{survey} — {round}: {completed} of {invited} ({rate})",
           survey=title, round=tr(language, "Round {number}", number="1"), completed="4", invited="5", rate="80%"),
        tr(language, "{survey} — {round}: {completed} of {invited} ({rate})",
           survey=title, round=tr(language, "Round {number}", number="2"), completed="3", invited="5", rate="60%"),
        tr(language, "Activities: {total} — planned {planned}, in progress {in_progress}, done {done}, cancelled {cancelled}",
           total="5", planned="1", in_progress="1", done="2", cancelled="1"),
        tr(language, "Done on time: {share}", share="50%"),
        tr(language, "Overdue: {count}", count="1"),
        tr(language, "Reports: {received} received, {verified} verified", received="2", verified="1"),
        tr(language, "{title}, {date}: invited {invited} — yes {yes}, no {no}, maybe {maybe}, no reply {none}",
           title="Cluster meeting", date=meeting_day, invited="5", yes="2", no="1", maybe="1", none="1"),
        tr(language, "{round}: {index}", round=tr(language, "Baseline"), index="2.5"),
        tr(language, "{round}: {index} ({change})", round=tr(language, "Round {number}", number="2"), index="3.7", change="+1.2"),
        tr(language, "{round}: {ties} ties, density {density}, firms linked to an institution or bank {share}",
           round=tr(language, "Baseline"), ties="2", density="13.33%", share="33%"),
        tr(language, "{round}: {ties} ties, density {density}, firms linked to an institution or bank {share}",
           round=tr(language, "Round {number}", number="2"), ties="3", density="20%", share="67%"),
        tr(language, "Change since the previous round: {ties} ties, firms linked {points}",
           ties="+1", points=tr(language, "{change} points", change="+33")),
        tr(language, "Most connected: {list}", list="Asha (2), Bala (1), Chitra (1), Dena Bank (1), Eklavya Institute (1)"),
    ]


@pytest.mark.parametrize("language", ["hi", "en"])
async def test_stats_in_chat_shows_the_known_figures(user_factory, sessionmaker, language):
    known = await build_known_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code=language)
    await cda.send("/stats")
    text = cda.last_text()
    for line in _expected_dashboard_lines(language, known):
        assert line in text, line
    overdue = "Bank credit camp (hi)" if language == "hi" else "Bank credit camp"
    assert tr(language, "• {title}, due {date}", title=overdue, date=Translator(language).date(known.today - timedelta(days=3), "medium")) in text
    assert "Called off" not in text and "Old plan" not in text
    labels = cda.buttons()
    assert _chart_button(language, "Trust index") in labels and _chart_button(language, "Linkage network") in labels


def _chart_button(language: str, section: str) -> str:
    return tr(language, "📈 {section}", section=tr(language, section))


async def test_cda_of_several_clusters_picks_one_and_sees_only_its_figures(user_factory, sessionmaker):
    await build_known_cluster(sessionmaker)
    other = await build_known_cluster_like(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/stats")
    assert cda.last_text() == tr("en", "Which cluster?")
    await cda.click("Firozabad Glass")
    text = cda.last_text()
    assert tr("en", "Members: {count}", count="1") in text and "Firozabad Glass" in text
    assert other.name in text and "Asha" not in text


async def test_stats_buttons_check_the_cluster_on_the_server(user_factory, sessionmaker, app, api):
    known = await build_known_cluster(sessionmaker)
    other = await build_known_cluster_like(sessionmaker)
    async with sessionmaker() as session:
        await add_cda(session, telegram_user_id=OTHER_CDA, cluster=other)
    outsider = user_factory(OTHER_CDA, language_code="en")
    await outsider.send("/stats")
    message = outsider.bot_messages()[-1]
    # A forged button for the cluster this CDA does not run: refused, nothing rendered.
    await outsider.press(f"sts:chart:{known.cluster.id}:members", message)
    assert outsider.alerts() == [tr("en", "Sorry, only the CDA of a cluster can use this command.")]
    assert not [call for call in outsider.replies if call.method == "sendPhoto"]
    await outsider.press(f"sts:xlsx:{known.cluster.id}", message)
    assert not [call for call in outsider.replies if call.method == "sendDocument"]
    stakeholder = user_factory(BASE_ID + 1, language_code="hi")
    await stakeholder.send("/stats")
    assert stakeholder.last_text() == tr("hi", "Sorry, only the CDA of a cluster can use this command.")
    await stakeholder.press(f"sts:chart:{known.cluster.id}:members", message)
    assert not [call for call in stakeholder.replies if call.method == "sendPhoto"]
    async with sessionmaker() as session:
        refused = (await session.exec(select(AuditEntry).where(AuditEntry.action == "refused"))).all()
    assert any(entry.subject == "/stats" for entry in refused)


async def test_chart_button_sends_a_png_for_the_section(user_factory, sessionmaker):
    await build_known_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="ta")
    await cda.send("/stats")
    await cda.click(_chart_button("ta", "Trust index"))
    photo = next(call for call in cda.replies if call.method == "sendPhoto")
    assert photo.files["photo"][1].startswith(b"\x89PNG\r\n\x1a\n")
    assert tr("ta", "Trust index") in photo.params["caption"]


async def test_empty_cluster_dashboard_says_so(user_factory, sessionmaker):
    await make_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/stats")
    text = cda.last_text()
    assert tr("en", "Members: {count}", count="0") in text
    assert tr("en", "No survey has been sent yet.") in text
    await cda.click(_chart_button("en", "Meetings"))
    assert cda.last_text() == tr("en", "Nothing to draw yet for this section.")


async def test_collector_pause_is_counted_and_restores_the_collector():
    import asyncio
    import gc

    assert gc.isenabled()

    async def report(delay: float) -> bool:
        with stats.collector_paused():
            await asyncio.sleep(delay)
            return gc.isenabled()

    first, second = await asyncio.gather(report(0.02), report(0.01))
    assert (first, second) == (False, False) and gc.isenabled()
    assert await stats.off_loop(gc.isenabled) is False and gc.isenabled()
    gc.disable()
    try:
        with stats.collector_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
