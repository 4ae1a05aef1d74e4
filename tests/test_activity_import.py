"""Importing an action plan from CSV or XLSX: through the service the CLI calls, and as a file sent
to the bot; row-numbered problems, and nothing imported unless every row is right."""

from __future__ import annotations

import io
from datetime import date, datetime

from openpyxl import Workbook

from bot.i18n import Translator
from bot.services.activity_import import import_activities
from models import Activity, ActivityPerson, AuditEntry, Cluster, Stakeholder
from tests.conftest import CDA_ID
from tests.survey_helpers import add_member
from tests.test_activity import all_rows, setup_cluster

HEADER = "year,title,title::hi,category,description,start_date,due_date,venue,target,leads,participants,status"
GOOD_CSV = f"""{HEADER}
2027,Lean training,लीन प्रशिक्षण,Training,Two days on lean methods,10/03/2027,12/03/2027,Town hall,20 firms trained,आशा देवी; +91 98765 43210,Ravi Kumar,planned
2027,Joint stall at IHGF,,joint marketing,,,2027-10-15,,,john mathew,,In progress
"""


def document_update(api, user_id: int, data: bytes, name: str, *, language_code: str | None = None) -> dict:
    """A private message carrying a file, as Telegram delivers it."""
    update = api.make_message(user_id, None, language_code=language_code)
    stored = api._register_file(data, name, "document")
    update["message"]["document"] = api._media_object("document", stored)
    return update


async def give_phone(sessionmaker, stakeholder_id: int, phone: str) -> None:
    async with sessionmaker() as session:
        member = await session.get(Stakeholder, stakeholder_id)
        member.phone = phone
        session.add(member)
        await session.commit()


async def run_import(sessionmaker, cluster, filename: str, data: bytes):
    async with sessionmaker() as session:
        fresh = await session.get(Cluster, cluster.id)
        return await import_activities(session, cluster=fresh, filename=filename, data=data, actor_user_id=None)


async def test_csv_import_creates_activities_with_leads_and_languages(sessionmaker):
    cluster, members = await setup_cluster(sessionmaker)
    await give_phone(sessionmaker, members["murugan"].id, "+919876543210")
    result = await run_import(sessionmaker, cluster, "plan.csv", GOOD_CSV.encode("utf-8-sig"))
    assert result.ok, [str(p) for p in result.problems]
    assert result.created == 2
    lean, stall = sorted(await all_rows(sessionmaker, Activity), key=lambda a: a.id)
    assert lean.title == {"en": "Lean training", "hi": "लीन प्रशिक्षण"}
    assert lean.description == {"en": "Two days on lean methods"}
    assert (lean.year, lean.category, lean.status) == (2027, "training", "planned")
    assert (lean.start_date, lean.due_date, lean.venue, lean.target) == (date(2027, 3, 10), date(2027, 3, 12), "Town hall", "20 firms trained")
    assert (stall.category, stall.status, stall.due_date, stall.start_date) == ("joint_marketing", "in_progress", date(2027, 10, 15), None)
    people = {(p.activity_id, p.stakeholder_id, p.role) for p in await all_rows(sessionmaker, ActivityPerson)}
    assert people == {
        (lean.id, members["asha"].id, "lead"),
        (lean.id, members["murugan"].id, "lead"),  # found by phone number
        (lean.id, members["ravi"].id, "participant"),
        (stall.id, members["john"].id, "lead"),  # names match case-insensitively
    }
    [entry] = await all_rows(sessionmaker, AuditEntry, AuditEntry.action == "activity.import")
    assert entry.detail == {"rows": 2}

    # The same plan twice: refused, nothing doubled.
    again = await run_import(sessionmaker, cluster, "plan.csv", GOOD_CSV.encode())
    assert [str(p) for p in again.problems] == [
        "Row 2: the activity Lean training for 2027 is already in the plan.",
        "Row 3: the activity Joint stall at IHGF for 2027 is already in the plan.",
    ]
    assert len(await all_rows(sessionmaker, Activity)) == 2


async def test_every_bad_row_is_named_and_nothing_is_imported(sessionmaker):
    cluster, members = await setup_cluster(sessionmaker)
    await add_member(sessionmaker, cluster, 6_100_099, "Ravi Kumar", "hi")  # a second Ravi Kumar
    data = "\n".join([
        "year;title;category;start_date;due_date;leads",
        "2027;Good row;training;01/03/2027;05/03/2027;आशा देवी",
        "2027;Bad date;training;;31/02/2026;",
        "2027;;training;;;",
        "2027;Unknown lead;training;;;Nobody Here",
        "2027;Bad category;cooking;;;",
        "1999;Bad year;;;;",
        "2027;Backwards;;10/03/2027;01/03/2027;",
        "2027;Good row;;;;",
        "2027;Two Ravis;;;;Ravi Kumar",
        "",
    ]).encode()
    result = await run_import(sessionmaker, cluster, "plan.csv", data)
    assert not result.ok
    assert [str(p) for p in result.problems] == [
        "Row 3: due_date 31/02/2026 is not a date (write day/month/year, for example 25/12/2026).",
        "Row 4: the title is missing.",
        "Row 5: leads: Nobody Here is not a member of this cluster (write their name or phone number).",
        "Row 6: category cooking is not known. Use one of: training, exposure_visit, joint_marketing, "
        "technology_upgrade, credit_finance, common_facility, trust_meeting, other.",
        "Row 7: year 1999 is not a year between 2000 and 2100.",
        "Row 8: due_date is before start_date.",
        "Row 9: the same activity as row 2.",
        "Row 10: leads: Ravi Kumar matches 2 members; write their phone number instead.",
    ]
    assert await all_rows(sessionmaker, Activity) == []
    assert await all_rows(sessionmaker, ActivityPerson) == []


async def test_bad_files_and_columns_are_refused(sessionmaker):
    cluster, _ = await setup_cluster(sessionmaker)
    cases = [
        ("plan.csv", b"year,title,owner\n2027,X,me\n",
         "Column “owner” is not known. The columns are: year, title, category, description, start_date, due_date, venue, target, leads, participants, status."),
        ("plan.csv", b"year,title::xx\n2027,X\n", "Column “title::xx”: xx is not a language code we know (en, hi, bn, mr, te, ta, gu, kn, ml, pa)."),
        ("plan.csv", b"year,category\n2027,training\n", "The file has no title column."),
        ("plan.csv", b"year,title\n", "The file has no activities below the header row."),
        ("plan.csv", "year,title\n2027,ಕ\n".encode("utf-16"), "The file is not in UTF-8. Save it as “CSV UTF-8” and send it again."),
        ("plan.xlsx", b"PK\x03\x04 not really a workbook", "The file could not be read. Send a .csv (UTF-8) or an Excel .xlsx file."),
        ("plan.pdf", b"%PDF-1.4", "The file could not be read. Send a .csv (UTF-8) or an Excel .xlsx file."),
    ]
    for filename, data, message in cases:
        result = await run_import(sessionmaker, cluster, filename, data)
        assert [str(p) for p in result.problems] == [message], filename
    assert await all_rows(sessionmaker, Activity) == []


def workbook_bytes(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_xlsx_with_date_cells_numbers_and_language_columns(sessionmaker):
    cluster, members = await setup_cluster(sessionmaker)
    await give_phone(sessionmaker, members["john"].id, "9876512345")
    data = workbook_bytes([
        ["Year", "Title", "Title::Tamil (ta)", "Category", "Start date", "Due date", "Leads", "Status"],
        [2027, "Energy audit", "ஆற்றல் தணிக்கை", "Technology upgrade", datetime(2027, 1, 5), datetime(2027, 2, 28), 9876512345, "Done"],
        [None, None, None, None, None, None, None, None],
        [None, "Credit camp", None, "credit_finance", None, "15/06/2027", None, None],
    ])
    result = await run_import(sessionmaker, cluster, "plan.xlsx", data)
    assert result.ok, [str(p) for p in result.problems]
    audit_row, camp = sorted(await all_rows(sessionmaker, Activity), key=lambda a: a.id)
    assert audit_row.title == {"en": "Energy audit", "ta": "ஆற்றல் தணிக்கை"}
    assert (audit_row.start_date, audit_row.due_date, audit_row.status, audit_row.completed_on) == (
        date(2027, 1, 5), date(2027, 2, 28), "done", date(2027, 2, 28)
    )
    assert camp.year == 2027 and camp.category == "credit_finance"  # the year comes from the due date
    [lead] = await all_rows(sessionmaker, ActivityPerson)
    assert (lead.activity_id, lead.stakeholder_id, lead.role) == (audit_row.id, members["john"].id, "lead")


async def test_cda_sends_the_file_to_the_bot_in_hindi(app, api, sessionmaker, user_factory):
    cluster, members = await setup_cluster(sessionmaker)
    await give_phone(sessionmaker, members["murugan"].id, "+919876543210")
    hindi = Translator("hi")
    cda = user_factory(CDA_ID, language_code="hi")
    await cda.send("/activity")
    await cda.click(hindi("📥 Import from a file"))
    assert "<code>title::hi</code>" in cda.last_text()
    await cda.send("plan")
    assert hindi("Please send the file (CSV or Excel).") in cda.last_text()

    bad = b"year,title,due_date\n2027,Visit,31/02/2026\n"
    await cda._process(document_update(api, CDA_ID, bad, "plan.csv", language_code="hi"))
    text = cda.last_text()
    assert text.startswith(hindi("Nothing was imported. Please fix these problems and send the file again:"))
    assert hindi("Row {row}: {column} {value} is not a date (write day/month/year, for example 25/12/2026).").format(
        row=2, column="due_date", value="31/02/2026"
    ) in text
    assert await all_rows(sessionmaker, Activity) == []

    await cda._process(document_update(api, CDA_ID, GOOD_CSV.encode(), "plan.csv", language_code="hi"))
    assert hindi.ngettext("✅ Imported {count} activity.", "✅ Imported {count} activities.", 2).format(count=hindi.number(2)) in cda.texts()
    assert any(label.startswith("लीन प्रशिक्षण") for label in cda.buttons())  # the list, titles in Hindi
    assert len(await all_rows(sessionmaker, Activity)) == 2
    downloads = [c for c in api.calls if c.method == "getFile"]
    assert len(downloads) == 2
