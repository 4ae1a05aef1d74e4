"""A cluster's data as files: an XLSX workbook with one sheet per table, or a zip of CSV files.

Only the given cluster's rows are read, so personal data never crosses clusters; the caller checks
that the person asking runs that cluster. Survey sheets follow KoboToolbox's export: one row per
completed response, one column per question (named by the question's stable name), choices shown
by their label in the chosen language. Anonymous surveys get no stakeholder column and their rows
come in a meaningless order, so a row cannot be matched with the order people answered in.

The export is a pipeline, so a cluster of any size costs little memory and never holds the event
loop: the loop streams rows from the database in partitions and hands each partition to a writer
thread through a small bounded queue; the thread turns rows into cells and writes them straight
into the zip archive (an XLSX file is a zip of XML parts, written here directly, which is several
times faster than a general spreadsheet library for this one job).
"""

from __future__ import annotations

import asyncio
import csv
import io
import queue
import re
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, not_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import audit
from bot.services.activities import CATEGORY_LABELS, STATUS_LABELS
from bot.services.fields import ROLE_LABELS, SIZE_LABELS
from bot.services.stats import collector_paused
from bot.services.surveys.model import Question, SurveyDefinition, text_in
from models import (
    Activity,
    ActivityPerson,
    Broadcast,
    Cluster,
    CompletionReport,
    Meeting,
    MeetingInvite,
    Membership,
    OutboxMessage,
    Stakeholder,
    Survey,
    SurveyLaunch,
    SurveyResponse,
)
from models.action_plan import ActivityRole
from models.base import as_utc, utcnow

FORMATS = ("xlsx", "csv")
EXTENSIONS = {"xlsx": "xlsx", "csv": "zip"}
COMPLETED = "completed"
PARTITION = 500
QUEUED_PARTITIONS = 4

MEMBER_STATUS_LABELS = {"active": N_("Active"), "unreachable": N_("Unreachable"), "left": N_("Left")}
REPLY_LABELS = {"yes": N_("Yes"), "no": N_("No"), "maybe": N_("Maybe")}
MEETING_STATUS_LABELS = {"scheduled": N_("Scheduled"), "cancelled": N_("Cancelled")}
DELIVERY_LABELS = {
    "queued": N_("Queued"), "sending": N_("Sending"), "sent": N_("Sent"),
    "failed": N_("Failed"), "skipped": N_("Skipped"),
}


class ExportError(Exception):
    """A request for an export that cannot be made; the message says what to do (for the CLI)."""


# ---------------------------------------------------------------- file writers (worker thread)


@dataclass(frozen=True)
class Sheet:
    key: str  # the file name inside the CSV zip: ASCII, the same in every language
    title: str  # the sheet's name, in the chosen language
    headers: list[str]


def _column(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


_COLUMNS = [_column(index) for index in range(256)]
# Characters XML 1.0 does not allow, which Excel refuses to open.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_EXCEL_EPOCH = datetime(1899, 12, 30)
_MAX_CELL = 32767
STYLE_HEADER, STYLE_DATE, STYLE_MOMENT = 1, 2, 3

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFEEEEEE"/><bgColor indexed="64"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)


def _text(value: str) -> str:
    value = _NOT_XML.sub("", value)[:_MAX_CELL]
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(reference: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return f'<c r="{reference}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int) or (isinstance(value, float) and value == value and abs(value) != float("inf")):
        return f'<c r="{reference}"><v>{value!r}</v></c>'
    if isinstance(value, datetime):
        serial = (value - _EXCEL_EPOCH).total_seconds() / 86400
        return f'<c r="{reference}" s="{STYLE_MOMENT}"><v>{serial:.8f}</v></c>'
    if isinstance(value, date):
        return f'<c r="{reference}" s="{STYLE_DATE}"><v>{(value - _EXCEL_EPOCH.date()).days}</v></c>'
    return f'<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">{_text(str(value))}</t></is></c>'


def sheet_title(title: str, taken: set[str]) -> str:
    """A name Excel accepts: at most 31 characters, none of []:*?/\\, unique regardless of case."""
    clean = " ".join(re.sub(r"[\[\]:*?/\\]", " ", title).split()) or "Sheet"
    candidate, number = clean[:31], 2
    while candidate.casefold() in taken:
        suffix = f" ({number})"
        candidate, number = clean[: 31 - len(suffix)].rstrip() + suffix, number + 1
    taken.add(candidate.casefold())
    return candidate


class XlsxWriter:
    """Just what an export needs: inline strings, numbers, dates, a bold frozen header row with a
    filter, and column widths. Rows go straight into the zip, one sheet at a time."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.archive = zipfile.ZipFile(self.buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.sheets: list[Sheet] = []
        self.titles: list[str] = []
        self.taken: set[str] = set()
        self.stream: io.TextIOWrapper | None = None
        self.row = 0

    def begin(self, sheet: Sheet) -> None:
        self.sheets.append(sheet)
        self.titles.append(sheet_title(sheet.title, self.taken))
        self.stream = io.TextIOWrapper(
            self.archive.open(f"xl/worksheets/sheet{len(self.sheets)}.xml", "w"), encoding="utf-8"
        )
        widths = "".join(
            f'<col min="{n}" max="{n}" width="{min(max(len(header) + 3, 10), 40)}" customWidth="1"/>'
            for n, header in enumerate(sheet.headers, start=1)
        )
        header = "".join(
            f'<c r="{_COLUMNS[n]}1" t="inlineStr" s="{STYLE_HEADER}"><is><t>{_text(h)}</t></is></c>'
            for n, h in enumerate(sheet.headers)
        )
        self.stream.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_MAIN}">'
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
            f'state="frozen"/></sheetView></sheetViews><cols>{widths}</cols><sheetData><row r="1">{header}</row>'
        )
        self.row = 1

    def rows(self, rows: Iterable[Sequence[Any] | None]) -> None:
        chunk = []
        columns = _COLUMNS
        for values in rows:
            if values is None:
                continue
            self.row += 1
            number = str(self.row)
            cells = "".join([_cell(columns[n] + number, value) for n, value in enumerate(values)])
            if values and (values[-1] is None or values[-1] == ""):
                # An empty last cell gives the row its full width for readers that go by the
                # row (the file has no dimension: rows are streamed before they are counted).
                cells += f'<c r="{columns[len(values) - 1]}{number}"/>'
            chunk.append(f'<row r="{number}">{cells}</row>')
        self.stream.write("".join(chunk))

    def end(self) -> None:
        last = _COLUMNS[max(len(self.sheets[-1].headers) - 1, 0)]
        self.stream.write(f'</sheetData><autoFilter ref="A1:{last}{max(self.row, 2)}"/></worksheet>')
        self.stream.close()

    def close(self) -> bytes:
        count = len(self.sheets)
        sheets = "".join(
            f'<sheet name={quoteattr(title)} sheetId="{n}" r:id="rId{n}"/>'
            for n, title in enumerate(self.titles, start=1)
        )
        parts = {
            "[Content_Types].xml": (
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                '<Override PartName="/xl/styles.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                + "".join(
                    f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
                    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for n in range(1, count + 1)
                )
                + "</Types>"
            ),
            "_rels/.rels": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
                f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/>'
                "</Relationships>"
            ),
            "xl/workbook.xml": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{_MAIN}" '
                f'xmlns:r="{_RELATIONSHIPS}"><sheets>{sheets}</sheets></workbook>'
            ),
            "xl/_rels/workbook.xml.rels": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
                + "".join(
                    f'<Relationship Id="rId{n}" Type="{_RELATIONSHIPS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                    for n in range(1, count + 1)
                )
                + f'<Relationship Id="rId{count + 1}" Type="{_RELATIONSHIPS}/styles" Target="styles.xml"/>'
                "</Relationships>"
            ),
            "xl/styles.xml": _STYLES,
        }
        for name, content in parts.items():
            self.archive.writestr(name, content)
        self.archive.close()
        return self.buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else value


class CsvZipWriter:
    """One CSV file per table in a zip; UTF-8 with a byte-order mark, so spreadsheet programs
    read the Indian scripts correctly."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.archive = zipfile.ZipFile(self.buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.stream: io.TextIOWrapper | None = None

    def begin(self, sheet: Sheet) -> None:
        self.stream = io.TextIOWrapper(self.archive.open(f"{sheet.key}.csv", "w"), encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.stream)
        self.writer.writerow(sheet.headers)

    def rows(self, rows: Iterable[Sequence[Any] | None]) -> None:
        self.writer.writerows([_csv_value(value) for value in row] for row in rows if row is not None)

    def end(self) -> None:
        self.stream.close()

    def close(self) -> bytes:
        self.archive.close()
        return self.buffer.getvalue()


WRITERS: dict[str, type[XlsxWriter] | type[CsvZipWriter]] = {"xlsx": XlsxWriter, "csv": CsvZipWriter}
_DONE = object()


def _drain(jobs: queue.Queue, writer: XlsxWriter | CsvZipWriter) -> bytes:
    """The writer thread: begin / rows / end per sheet, then the finished file."""
    with collector_paused():
        return _write_jobs(jobs, writer)


def _write_jobs(jobs: queue.Queue, writer: XlsxWriter | CsvZipWriter) -> bytes:
    while True:
        job = jobs.get()
        if job is _DONE:
            return writer.close()
        kind, first, second = job
        if kind == "begin":
            writer.begin(first)
        elif kind == "rows":
            writer.rows(first(row) for row in second)
        elif kind == "end":
            writer.end()
        else:
            return b""


# ---------------------------------------------------------------- cells (worker thread)


class Cells:
    """Turns stored values into cells: local times, translated labels, names for ids."""

    def __init__(self, t: Translator, cluster: Cluster, names: dict[int, str]) -> None:
        self.t, self.zone, self.names = t, ZoneInfo(cluster.timezone), names
        self.fallback = cluster.language
        self._labels: dict[tuple[int, str], str] = {}

    def moment(self, value: datetime | None) -> datetime | None:
        return as_utc(value).astimezone(self.zone).replace(tzinfo=None, microsecond=0) if value else None

    def label(self, labels: dict[str, str], value: str | None) -> str | None:
        if value not in labels:
            return value
        key = (id(labels), value)
        if key not in self._labels:
            self._labels[key] = self.t(labels[value])
        return self._labels[key]

    def text(self, texts: dict[str, str] | None) -> str:
        return text_in(texts or {}, self.t.language, self.fallback)

    def name(self, stakeholder_id: int | None) -> str | None:
        return self.names.get(stakeholder_id) if stakeholder_id is not None else None

    def named(self, ids: Iterable[int]) -> str:
        return "; ".join(self.names.get(i) or f"#{i}" for i in ids)


def _answer_reader(question: Question, cells: Cells, language: str, fallback: str) -> Callable[[Any], Any]:
    """A function from a stored answer to its cell, chosen once per question."""
    kind = question.type
    if kind in ("select_one", "select_multiple"):
        labels = {choice.name: text_in(choice.label, language, fallback) for choice in question.choices}
        if kind == "select_one":
            return lambda value: labels.get(str(value), value)
        return lambda value: "; ".join(
            labels.get(str(item), str(item)) for item in (value if isinstance(value, list) else str(value).split())
        )
    if kind == "select_stakeholders":
        return lambda value: cells.named(int(item) for item in value)
    if kind == "date":
        def read_date(value: Any) -> Any:
            try:
                return date.fromisoformat(str(value))
            except ValueError:
                return str(value)
        return read_date
    if kind in ("integer", "decimal", "range"):
        return lambda value: value if isinstance(value, int | float) else str(value)
    return str


def _survey_row(definition: SurveyDefinition, anonymous: bool, cells: Cells, language: str):
    questions = [q for q in definition.questions if q.type != "note"]
    readers = [(q.name, _answer_reader(q, cells, language, definition.default_language)) for q in questions]

    def row(values: tuple) -> list[Any]:
        response_id, wave, stakeholder_id, completed_at, answers = values
        answers = answers or {}
        answered = [
            None if (value := answers.get(name)) is None or value == "" or value == [] else read(value)
            for name, read in readers
        ]
        moment = cells.moment(completed_at)
        if anonymous:
            return [wave, moment.date() if moment else None, *answered]
        return [response_id, wave, moment, stakeholder_id, cells.name(stakeholder_id), *answered]

    return [q.name for q in questions], row


# ---------------------------------------------------------------- the pipeline (event loop)


def _key(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()


class _Pipe:
    def __init__(self, jobs: queue.Queue, writer: asyncio.Future) -> None:
        self.jobs, self.writer = jobs, writer

    async def put(self, job: Any) -> None:
        # The loop never blocks on a full queue: it waits its turn with short sleeps.
        while True:
            if self.writer.done():
                self.writer.result()
                raise ExportError("The export stopped early.")
            try:
                self.jobs.put_nowait(job)
                return
            except queue.Full:
                await asyncio.sleep(0.005)

    async def table(
        self, session: AsyncSession, key: str, title: str, headers: list[str], statement: Select | None,
        row: Callable[[tuple], Sequence[Any] | None], rows: list[tuple] | None = None,
    ) -> None:
        await self.put(("begin", Sheet(key, title, headers), None))
        if rows is not None:
            await self.put(("rows", row, rows))
        if statement is not None:
            result = await session.stream(statement)
            async for partition in result.partitions(PARTITION):
                await self.put(("rows", row, [tuple(item) for item in partition]))
        await self.put(("end", None, None))


async def _names(session: AsyncSession, cluster: Cluster) -> dict[int, str]:
    names: dict[int, str] = {}
    result = await session.stream(
        select(Stakeholder.id, Stakeholder.name)
        .join(Membership, col(Membership.stakeholder_id) == Stakeholder.id)
        .where(Membership.cluster_id == cluster.id)
    )
    async for partition in result.partitions(PARTITION):
        names.update((stakeholder_id, name) for stakeholder_id, name in partition)
    return names


async def _produce(session: AsyncSession, pipe: _Pipe, cluster: Cluster, language: str) -> None:
    t = Translator(language, cluster.timezone)
    cells = Cells(t, cluster, await _names(session, cluster))
    label, moment, name = cells.label, cells.moment, cells.name

    await pipe.table(session, "stakeholders", t("Stakeholders"), [
        t("ID"), t("Name"), t("Role"), t("Enterprise"), t("Product or sector"), t("Size (Udyam)"), t("Phone"),
        t("Language"), t("Status"), t("Joined"), t("Registered"),
    ], select(
        Stakeholder.id, Stakeholder.name, Stakeholder.role, Stakeholder.enterprise, Stakeholder.product,
        Stakeholder.size_class, Stakeholder.phone, Stakeholder.language, Stakeholder.status, Membership.joined_at,
        Stakeholder.created_at,
    ).join(Membership, col(Membership.stakeholder_id) == Stakeholder.id)
        .where(Membership.cluster_id == cluster.id).order_by(col(Stakeholder.id)),
        lambda r: [r[0], r[1], label(ROLE_LABELS, r[2]), r[3], r[4], label(SIZE_LABELS, r[5]), r[6],
                   LANGUAGES.get(r[7], r[7]), label(MEMBER_STATUS_LABELS, r[8]), moment(r[9]), moment(r[10])])

    launched = select(SurveyLaunch.survey_id).where(SurveyLaunch.cluster_id == cluster.id)
    surveys = (await session.exec(
        select(Survey.id, Survey.form_id, Survey.version, Survey.title, Survey.default_language, Survey.anonymous,
               Survey.definition)
        .where(Survey.cluster_id == cluster.id, col(Survey.id).in_(launched)).order_by(col(Survey.id))
    )).all()
    for survey_id, form_id, version, title, default_language, anonymous, definition in surveys:
        names, row = _survey_row(SurveyDefinition.from_dict(definition), anonymous, cells, language)
        fixed = [t("Round"), t("Completed on")] if anonymous else [
            t("Response"), t("Round"), t("Completed"), t("Stakeholder ID"), t("Name")]
        # A keyed hash orders anonymous rows: no trace of who answered first.
        order = col(SurveyResponse.respondent_key) if anonymous else col(SurveyResponse.id)
        await pipe.table(
            session, f"survey_{_key(form_id)}_{_key(version)}",
            f"{text_in(title or {}, language, default_language)} {version}", fixed + names,
            select(SurveyResponse.id, SurveyLaunch.wave, SurveyResponse.stakeholder_id, SurveyResponse.completed_at,
                   SurveyResponse.answers)
            .join(SurveyLaunch, col(SurveyLaunch.id) == SurveyResponse.launch_id)
            .where(SurveyResponse.survey_id == survey_id, SurveyLaunch.cluster_id == cluster.id,
                   SurveyResponse.status == COMPLETED)
            .order_by(col(SurveyLaunch.wave), order),
            row,
        )

    activity_ids = select(Activity.id).where(Activity.cluster_id == cluster.id)
    people: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    result = await session.stream(
        select(ActivityPerson.activity_id, ActivityPerson.stakeholder_id, ActivityPerson.role)
        .where(col(ActivityPerson.activity_id).in_(activity_ids)).order_by(col(ActivityPerson.id))
    )
    async for partition in result.partitions(PARTITION):
        for activity_id, stakeholder_id, role in partition:
            people[activity_id][role].append(stakeholder_id)
    activities = (await session.exec(
        select(Activity.id, Activity.year, Activity.title, Activity.category, Activity.status, Activity.start_date,
               Activity.due_date, Activity.completed_on, Activity.venue, Activity.target)
        .where(Activity.cluster_id == cluster.id).order_by(col(Activity.year), col(Activity.due_date), col(Activity.id))
    )).all()
    titles = {row[0]: cells.text(row[2]) for row in activities}

    def activity_row(r: tuple) -> list[Any]:
        roles = people.get(r[0], {})
        return [r[0], r[1], titles[r[0]], label(CATEGORY_LABELS, r[3]), label(STATUS_LABELS, r[4]), r[5], r[6], r[7],
                r[8], r[9], cells.named(roles.get(ActivityRole.LEAD, [])), len(roles.get(ActivityRole.PARTICIPANT, [])),
                cells.named(roles.get(ActivityRole.COORDINATOR, []))]

    await pipe.table(session, "activities", t("Activities"), [
        t("ID"), t("Year"), t("Title"), t("Category"), t("Status"), t("Start"), t("Due"), t("Completed on"),
        t("Venue"), t("Target"), t("Leads"), t("Participants"), t("Coordinators"),
    ], None, activity_row, rows=[tuple(row) for row in activities])

    await pipe.table(session, "reports", t("Reports"), [
        t("ID"), t("Activity ID"), t("Activity"), t("Stakeholder ID"), t("Name"), t("Status"), t("Progress (%)"),
        t("What was done"), t("Participants"), t("Photos (file ids)"), t("Submitted"), t("Verified"),
    ], select(
        CompletionReport.id, CompletionReport.activity_id, CompletionReport.stakeholder_id, CompletionReport.status,
        CompletionReport.progress, CompletionReport.done_text, CompletionReport.participants,
        CompletionReport.photo_file_ids, CompletionReport.submitted_at, CompletionReport.verified_at,
    ).where(col(CompletionReport.activity_id).in_(activity_ids), CompletionReport.state == "submitted")
        .order_by(col(CompletionReport.id)),
        lambda r: [r[0], r[1], titles.get(r[1]), r[2], name(r[2]), label(STATUS_LABELS, r[3]), r[4], r[5], r[6],
                   " ".join(r[7] or []) or None, moment(r[8]), moment(r[9])])

    tally: dict[int, dict[str | None, int]] = defaultdict(dict)
    for meeting_id, response, count in (await session.exec(
        select(MeetingInvite.meeting_id, MeetingInvite.response, func.count())
        .join(Meeting, col(Meeting.id) == MeetingInvite.meeting_id)
        .where(Meeting.cluster_id == cluster.id).group_by(MeetingInvite.meeting_id, MeetingInvite.response)
    )).all():
        tally[meeting_id][response] = int(count)
    meetings = (await session.exec(
        select(Meeting.id, Meeting.title, Meeting.starts_at, Meeting.duration_minutes, Meeting.venue, Meeting.status,
               Meeting.activity_id)
        .where(Meeting.cluster_id == cluster.id).order_by(col(Meeting.starts_at), col(Meeting.id))
    )).all()
    meeting_titles = {row[0]: row[1] for row in meetings}

    def meeting_row(r: tuple) -> list[Any]:
        counts = tally.get(r[0], {})
        return [r[0], r[1], moment(r[2]), r[3], r[4], label(MEETING_STATUS_LABELS, r[5]), r[6], sum(counts.values()),
                counts.get("yes", 0),
                counts.get("no", 0), counts.get("maybe", 0), counts.get(None, 0)]

    await pipe.table(session, "meetings", t("Meetings"), [
        t("ID"), t("Title"), t("Starts"), t("Duration (minutes)"), t("Venue"), t("Status"), t("Activity ID"),
        t("Invited"), t("Yes"), t("No"), t("Maybe"), t("No reply"),
    ], None, meeting_row, rows=[tuple(row) for row in meetings])
    no_reply = t("No reply")
    await pipe.table(session, "rsvps", t("RSVPs"), [
        t("Meeting ID"), t("Meeting"), t("Stakeholder ID"), t("Name"), t("Reply"), t("Replied"),
    ], select(MeetingInvite.meeting_id, MeetingInvite.stakeholder_id, MeetingInvite.response, MeetingInvite.responded_at)
        .join(Meeting, col(Meeting.id) == MeetingInvite.meeting_id)
        .where(Meeting.cluster_id == cluster.id).order_by(col(Meeting.starts_at), col(MeetingInvite.id)),
        lambda r: [r[0], meeting_titles.get(r[0]), r[1], name(r[1]),
                   label(REPLY_LABELS, r[2]) if r[2] else no_reply, moment(r[3])])

    # Deliveries to the cluster's members. A member of two clusters gets messages from both: where
    # the message's ref names a survey round or a broadcast, it must be one of this cluster's.
    def owned_elsewhere(prefix: str, mine: Select):
        return and_(col(OutboxMessage.purpose).startswith(prefix, autoescape=True),
                    col(OutboxMessage.ref_id).is_not(None), col(OutboxMessage.ref_id).not_in(mine))

    await pipe.table(session, "deliveries", t("Deliveries"), [
        t("ID"), t("Created"), t("Purpose"), t("Reference"), t("Stakeholder ID"), t("Name"), t("Status"),
        t("Attempts"), t("Sent"), t("Error"),
    ], select(
        OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.purpose, OutboxMessage.ref_id,
        OutboxMessage.stakeholder_id, OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.sent_at,
        OutboxMessage.last_error,
    ).where(
        col(OutboxMessage.stakeholder_id).in_(select(Membership.stakeholder_id).where(Membership.cluster_id == cluster.id)),
        not_(or_(
            owned_elsewhere("survey_", select(SurveyLaunch.id).where(SurveyLaunch.cluster_id == cluster.id)),
            owned_elsewhere("broadcast", select(Broadcast.id).where(Broadcast.cluster_id == cluster.id)),
        )),
    ).order_by(col(OutboxMessage.id)),
        lambda r: [r[0], moment(r[1]), r[2], r[3], r[4], name(r[4]), label(DELIVERY_LABELS, r[5]), r[6],
                   moment(r[7]), r[8]])


def export_filename(cluster: Cluster, fmt: str, today: date) -> str:
    slug = _key(cluster.name).replace("_", "-") or f"cluster-{cluster.id}"
    return f"{slug}-{today.isoformat()}.{EXTENSIONS[fmt]}"


async def write_export(
    session: AsyncSession, *, cluster: Cluster, fmt: str, language: str, actor_user_id: int | None = None
) -> tuple[str, bytes]:
    """(file name, content) of the cluster's data as ``xlsx`` or ``csv`` (a zip of CSV files).

    The export is written to the audit log: who (None for the operator's CLI), which cluster, format.
    """
    if fmt not in WRITERS:
        raise ExportError(f"Unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    jobs: queue.Queue = queue.Queue(maxsize=QUEUED_PARTITIONS)
    writer = asyncio.ensure_future(asyncio.to_thread(_drain, jobs, WRITERS[fmt]()))
    pipe = _Pipe(jobs, writer)
    try:
        with collector_paused():
            await _produce(session, pipe, cluster, language)
            await pipe.put(_DONE)
            content = await writer
    except BaseException:
        if not writer.done():
            # Tell the thread to stop; it takes the next job as soon as there is room.
            while True:
                try:
                    jobs.put_nowait(("abort", None, None))
                    break
                except queue.Full:
                    jobs.get_nowait()
        raise
    audit.record(session, actor_user_id=actor_user_id, action="export", cluster_id=cluster.id,
                 subject=fmt, detail={"format": fmt, "language": language})
    await session.commit()
    today = utcnow().astimezone(ZoneInfo(cluster.timezone)).date()
    return export_filename(cluster, fmt, today), content
