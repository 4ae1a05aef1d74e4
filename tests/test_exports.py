"""Exports: the XLSX opens with openpyxl with the expected sheets, columns and rows; the CSV zip
holds the same tables; personal data stays in its cluster; anonymous surveys carry no one's name."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from bot.services import exports
from bot.services.stakeholders import join_cluster
from bot.services.surveys import service as surveys
from models import AuditEntry, OutboxMessage, Stakeholder
from tests.conftest import CDA_ID
from tests.helpers import tr
from tests.test_stats import PEOPLE, build_known_cluster, build_known_cluster_like

TRUST_HI = "भरोसा और मिलकर काम 2026.1"
FEEDBACK_HI = "कार्यक्रम पर आपकी राय 2026.1"


def _sheets(content: bytes) -> dict[str, list[list]]:
    workbook = load_workbook(io.BytesIO(content), read_only=True)
    return {sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets}


async def test_xlsx_has_one_sheet_per_table_with_labels_in_the_chosen_language(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    async with sessionmaker() as session:
        filename, content = await exports.write_export(session, cluster=known.cluster, fmt="xlsx", language="hi")
    assert filename.startswith("moradabad-brassware-") and filename.endswith(".xlsx")
    sheets = _sheets(content)
    assert list(sheets) == [
        tr("hi", "Stakeholders"), FEEDBACK_HI, TRUST_HI, tr("hi", "Activities"), tr("hi", "Reports"),
        tr("hi", "Meetings"), tr("hi", "RSVPs"), tr("hi", "Deliveries"),
    ]

    header, *members = sheets[tr("hi", "Stakeholders")]
    assert header == [tr("hi", h) for h in ("ID", "Name", "Role", "Enterprise", "Product or sector", "Size (Udyam)",
                                            "Phone", "Language", "Status", "Joined", "Registered")]
    assert [row[1] for row in members] == [person for person, *_ in PEOPLE]
    asha = members[0]
    assert asha[2] == tr("hi", "MSME owner") and asha[3] == "Asha Brass Works" and asha[7] == "हिन्दी"
    assert members[5][8] == tr("hi", "Unreachable")

    header, *rows = sheets[TRUST_HI]
    assert header == [tr("hi", h) for h in ("Response", "Round", "Completed", "Stakeholder ID", "Name")] + [
        "trust_firms", "trust_institutions", "joint_activities", "works_with"]
    # Completed responses only: four in round 1, three in round 2 (Eklavya's unfinished one is left out).
    assert [row[1] for row in rows] == [1, 1, 1, 1, 2, 2, 2]
    assert [(row[4], row[5], row[6]) for row in rows[:4]] == [("Asha", 2, 2), ("Bala", 3, 2), ("Chitra", 4, 3), ("Dena Bank", 3, 1)]
    assert rows[0][8] == "Bala; Dena Bank" and rows[0][3] == known.ids["Asha"]

    header, *rows = sheets[FEEDBACK_HI]
    assert header == [tr("hi", "Round"), tr("hi", "Completed on"), "usefulness", "useful_parts", "take_part_again", "suggestions"]
    assert sorted((row[2], row[4]) for row in rows) == [(4, "हाँ"), (5, "शायद")]
    names = {person for person, *_ in PEOPLE}
    assert not names & {cell for row in rows for cell in row}

    header, *rows = sheets[tr("hi", "Activities")]
    assert header[:5] == [tr("hi", h) for h in ("ID", "Year", "Title", "Category", "Status")]
    assert {row[2] for row in rows} >= {"Bank credit camp (hi)", "Training on polishing (hi)"}
    assert {row[4] for row in rows} == {tr("hi", s) for s in ("Planned", "In progress", "Done", "Cancelled")}

    header, *rows = sheets[tr("hi", "Reports")]
    assert tr("hi", "Photos (file ids)") in header
    assert [(row[4], row[9]) for row in rows] == [("Asha", "photo-a photo-b"), ("Bala", None)]
    assert rows[0][11] is not None and rows[1][11] is None  # verified, not verified

    header, *rows = sheets[tr("hi", "Meetings")]
    assert [row[1] for row in rows] == ["Cluster meeting", "Called off"]
    assert rows[0][7:12] == [5, 2, 1, 1, 1]
    header, *rows = sheets[tr("hi", "RSVPs")]
    assert header == [tr("hi", h) for h in ("Meeting ID", "Meeting", "Stakeholder ID", "Name", "Reply", "Replied")]
    assert len(rows) == 10 and [row[4] for row in rows[:5]] == [
        tr("hi", "Yes"), tr("hi", "Yes"), tr("hi", "No"), tr("hi", "Maybe"), tr("hi", "No reply")]
    header, *rows = sheets[tr("hi", "Deliveries")]
    assert [(row[5], row[6]) for row in rows] == [("Asha", tr("hi", "Sent")), ("Farid", tr("hi", "Skipped"))]


async def test_csv_zip_holds_the_same_tables(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    async with sessionmaker() as session:
        filename, content = await exports.write_export(session, cluster=known.cluster, fmt="csv", language="en")
    assert filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == sorted([
            "stakeholders.csv", "survey_trust_linkage_2026_1.csv", "survey_activity_feedback_2026_1.csv",
            "activities.csv", "reports.csv", "meetings.csv", "rsvps.csv", "deliveries.csv",
        ])
        text = archive.read("stakeholders.csv").decode("utf-8-sig")
        feedback = list(csv.reader(io.StringIO(archive.read("survey_activity_feedback_2026_1.csv").decode("utf-8-sig"))))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["ID", "Name", "Role"] and len(rows) == 7
    assert rows[1][2] == "MSME owner" and rows[1][7] == "हिन्दी"
    assert feedback[0][:2] == ["Round", "Completed on"] and sorted(row[4] for row in feedback[1:]) == ["Maybe", "Yes"]


async def test_personal_data_stays_in_its_cluster(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    other = await build_known_cluster_like(sessionmaker)
    async with sessionmaker() as session:
        # Asha joins the other cluster too and is sent its survey: a member of both clusters.
        asha = await session.get(Stakeholder, known.ids["Asha"])
        await join_cluster(session, stakeholder=asha, cluster_id=other.id)
        [survey] = [s for s in await surveys.install_templates(session, cluster=other) if s.form_id == "trust_linkage"]
        launch, _ = await surveys.create_launch(session, survey=survey, audience=surveys.Audience(),
                                                closes_at=known.trust_waves[0].closes_at, created_by=CDA_ID)
        session.add(OutboxMessage(chat_id=asha.chat_id, stakeholder_id=asha.id, text="Survey", purpose="survey_invite",
                                  ref_id=launch.id, status="sent"))
        await session.commit()
        _, mine = await exports.write_export(session, cluster=known.cluster, fmt="xlsx", language="en")
        _, theirs = await exports.write_export(session, cluster=other, fmt="xlsx", language="en")
    mine_sheets, their_sheets = _sheets(mine), _sheets(theirs)
    assert "Gopal" not in str(mine_sheets)
    assert [row[1] for row in their_sheets["Stakeholders"][1:]] == ["Asha", "Gopal"]
    for person in ("Bala", "Chitra", "Dena Bank", "Farid"):
        assert person not in str(their_sheets)
    assert [row[2] for row in mine_sheets["Deliveries"][1:]] == ["broadcast", "broadcast"]
    assert [row[2] for row in their_sheets["Deliveries"][1:]] == ["survey_invite"]
    assert len(their_sheets["Activities"]) == 1 and len(their_sheets["Reports"]) == 1


async def test_unknown_format_is_refused(sessionmaker):
    known = await build_known_cluster_like(sessionmaker)
    async with sessionmaker() as session:
        with pytest.raises(exports.ExportError, match="xlsx, csv"):
            await exports.write_export(session, cluster=known, fmt="pdf", language="en")


async def test_export_in_chat_sends_the_file_and_logs_it(user_factory, sessionmaker):
    await build_known_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="hi")
    await cda.send("/export")
    document = next(call for call in cda.replies if call.method == "sendDocument")
    name, content = document.files["document"]
    assert name.endswith(".xlsx") and tr("hi", "Stakeholders") in _sheets(content)
    await cda.send("/export csv")
    document = next(call for call in cda.replies if call.method == "sendDocument")
    assert document.files["document"][0].endswith(".zip")
    assert zipfile.ZipFile(io.BytesIO(document.files["document"][1])).namelist()[0] == "stakeholders.csv"
    await cda.send("/export pdf")
    assert cda.last_text() == tr("hi", "Send /export for an Excel file, or /export csv for CSV files in a zip.")
    async with sessionmaker() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "export"))).all()
    assert [(entry.actor_user_id, entry.subject) for entry in entries] == [(CDA_ID, "xlsx"), (CDA_ID, "csv")]


async def test_export_button_of_the_dashboard(user_factory, sessionmaker):
    await build_known_cluster(sessionmaker)
    await build_known_cluster_like(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/export csv")
    assert cda.last_text() == tr("en", "Which cluster?")
    await cda.click("Firozabad Glass")
    document = next(call for call in cda.replies if call.method == "sendDocument")
    assert document.files["document"][0].startswith("firozabad-glass-")
    await cda.send("/stats")
    await cda.click("Moradabad Brassware")
    await cda.click(tr("en", "⬇ Excel file"))
    document = next(call for call in cda.replies if call.method == "sendDocument")
    assert document.files["document"][0].startswith("moradabad-brassware-")
    assert "Asha" in str(_sheets(document.files["document"][1]))


def test_xlsx_writer_cells_round_trip_through_openpyxl():
    from datetime import date, datetime

    writer = exports.XlsxWriter()
    headers = ["text", "number", "float", "day", "moment", "empty", "flag", "long", "nan"]
    writer.begin(exports.Sheet("cells", "Cells: [x]", headers))
    writer.rows([
        ["A & <B> \"q\"", 7, 3.25, date(2026, 3, 1), datetime(2026, 3, 1, 14, 30), None, True, "क" * 40000, float("nan")],
        ["bell\x07 ring", -2, 0.5, None, None, "", False, "", None],
    ])
    writer.end()
    writer.begin(exports.Sheet("second", "Cells: [x]", ["only"]))  # same title: still one sheet each
    writer.rows([["x"]])
    writer.end()
    workbook = load_workbook(io.BytesIO(writer.close()))
    first = workbook.worksheets[0]
    assert [sheet.title for sheet in workbook.worksheets] == ["Cells x", "Cells x (2)"]
    assert [cell.value for cell in first[1]] == headers and first["A1"].font.b
    row = [cell.value for cell in first[2]]
    assert row[:3] == ["A & <B> \"q\"", 7, 3.25]
    assert row[3] == datetime(2026, 3, 1) and first["D2"].number_format == "yyyy-mm-dd"
    assert row[4] == datetime(2026, 3, 1, 14, 30) and first["E2"].is_date
    assert row[5] is None and row[6] is True and len(row[7]) == 32767 and row[8] == "nan"
    assert [cell.value for cell in first[3]][:3] == ["bell ring", -2, 0.5]
    assert first.freeze_panes == "A2" and first.auto_filter.ref == "A1:I3"
