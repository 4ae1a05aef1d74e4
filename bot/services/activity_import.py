"""Import an action plan from a CSV or XLSX sheet: one activity per row, all rows or none.

Columns (header names, any order, case-insensitive): year, title, category, description,
start_date, due_date, venue, target, leads, participants, status. ``title`` and ``description`` are
in the cluster's language; ``title::hi`` (or ``title::Hindi (hi)``) adds another language.
``leads`` and ``participants`` name cluster members by name or phone number, ``;``-separated.
Problems name the spreadsheet row (the header is row 1), so the CDA can find and fix them.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import activities, audit
from bot.services.activities import CATEGORY_LABELS, STATUS_LABELS, ActivityProblem
from bot.services.surveys import engine
from models import Activity, Cluster, Membership, Stakeholder

MAX_ROWS = 1000
MAX_BYTES = 2_000_000
COLUMNS = (
    "year", "title", "category", "description", "start_date", "due_date", "venue", "target", "leads",
    "participants", "status",
)
TRANSLATABLE = ("title", "description")
LANGUAGE_COLUMN = re.compile(r"^(title|description)::(?:.*\((?P<inner>[A-Za-z-]+)\)|(?P<code>[A-Za-z-]+))$")


@dataclass(frozen=True)
class ImportProblem:
    """One reason the import was refused; ``row`` is the spreadsheet row (None: the whole file)."""

    msgid: str
    values: dict[str, Any] = field(default_factory=dict)
    row: int | None = None

    def text(self, t: Translator | None = None) -> str:
        """In the reader's language, or English for the command line."""
        values = {"row": self.row, **self.values}
        return (t(self.msgid) if t else self.msgid).format(**values)

    def __str__(self) -> str:
        return self.text()


@dataclass
class ImportResult:
    activities: list[Activity] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def created(self) -> int:
        return len(self.activities)


class _Refused(Exception):
    def __init__(self, problem: ImportProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


# ---------------------------------------------------------------- reading the sheet


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and value.is_integer():
        # Spreadsheets store years and phone numbers as floats.
        return int(value)
    return value


def _read_csv(data: bytes) -> list[list[Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refused(ImportProblem(N_("The file is not in UTF-8. Save it as “CSV UTF-8” and send it again."))) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[_cell(value) for value in row] for row in csv.reader(io.StringIO(text), dialect)]


def _read_xlsx(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise _Refused(_unreadable()) from None
    try:
        sheet = workbook.worksheets[0]
        rows = []
        for row in sheet.iter_rows(values_only=True):
            rows.append([_cell(value) for value in row])
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def _unreadable() -> ImportProblem:
    return ImportProblem(N_("The file could not be read. Send a .csv (UTF-8) or an Excel .xlsx file."))


def read_rows(filename: str, data: bytes) -> list[list[Any]]:
    if len(data) > MAX_BYTES:
        raise _Refused(ImportProblem(N_("The file is too large; split it into smaller files.")))
    name = (filename or "").lower()
    if name.endswith(".xlsx") or data[:2] == b"PK":
        return _read_xlsx(data)
    if name.endswith((".csv", ".txt")):
        return _read_csv(data)
    raise _Refused(_unreadable())


# ---------------------------------------------------------------- columns and values


def _header(rows: list[list[Any]]) -> dict[int, tuple[str, str | None]]:
    """Column index -> (field, language or None for the cluster's language)."""
    if not rows or not any(rows[0]):
        raise _Refused(ImportProblem(N_("The file is empty. The first row names the columns, for example: year, title, due_date.")))
    columns: dict[int, tuple[str, str | None]] = {}
    for index, raw in enumerate(rows[0]):
        if raw is None:
            continue
        name = re.sub(r"[\s-]+", "_", str(raw).strip().lower())
        match = LANGUAGE_COLUMN.match(name)
        if match:
            code = (match["inner"] or match["code"]).lower()
            if code not in LANGUAGES:
                raise _Refused(ImportProblem(
                    N_("Column “{column}”: {code} is not a language code we know ({codes})."),
                    {"column": str(raw), "code": code, "codes": ", ".join(LANGUAGES)}, row=1,
                ))
            columns[index] = (match[1], code)
        elif name in COLUMNS:
            columns[index] = (name, None)
        else:
            raise _Refused(ImportProblem(
                N_("Column “{column}” is not known. The columns are: {columns}."),
                {"column": str(raw), "columns": ", ".join(COLUMNS)}, row=1,
            ))
    seen = set()
    for key in columns.values():
        if key in seen:
            raise _Refused(ImportProblem(N_("Column “{column}” appears twice."), {"column": _column_name(*key)}, row=1))
        seen.add(key)
    if not any(column == "title" for column, _ in columns.values()):
        raise _Refused(ImportProblem(N_("The file has no title column."), row=1))
    return columns


def _column_name(column: str, language: str | None) -> str:
    return f"{column}::{language}" if language else column


def _normalise(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


def _choice_index(labels: dict[str, str]) -> dict[str, str]:
    """Every way a CDA may write a choice: its code, or its label in any shipped language."""
    index = {}
    for code, label in labels.items():
        index[_normalise(code)] = code
        for language in LANGUAGES:
            index[_normalise(Translator(language)(label))] = code
    return index


def _digits(text: str) -> str:
    return re.sub(r"\D", "", engine.normalise_digits(text))


class _Members:
    """Cluster members looked up by name (case-insensitive) or phone number (last ten digits)."""

    def __init__(self, members: list[Stakeholder]) -> None:
        self.by_name: dict[str, list[Stakeholder]] = {}
        self.by_phone: dict[str, list[Stakeholder]] = {}
        for member in members:
            self.by_name.setdefault(_normalise(member.name), []).append(member)
            if member.phone and len(_digits(member.phone)) >= 10:
                self.by_phone.setdefault(_digits(member.phone)[-10:], []).append(member)

    def find(self, text: str) -> list[Stakeholder]:
        digits = _digits(text)
        if len(digits) >= 10 and not re.search(r"[^\d\s+()\-.]", engine.normalise_digits(text)):
            return self.by_phone.get(digits[-10:], [])
        return self.by_name.get(_normalise(text), [])


@dataclass
class _Row:
    number: int
    values: dict[str, Any] = field(default_factory=dict)
    leads: list[int] = field(default_factory=list)
    participants: list[int] = field(default_factory=list)


def _text(row: int, column: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split()) if column != "description" else str(value).strip()
    if len(text) > limit:
        raise _Refused(ImportProblem(N_("Row {row}: {column} is longer than {limit} characters."), {"column": column, "limit": limit}, row=row))
    return text or None


def _date(row: int, column: str, value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return engine.parse_date(str(value))
    except engine.InvalidAnswer:
        raise _Refused(ImportProblem(
            N_("Row {row}: {column} {value} is not a date (write day/month/year, for example 25/12/2026)."),
            {"column": column, "value": str(value)}, row=row,
        )) from None


def _parse_row(
    number: int, cells: dict[tuple[str, str | None], Any], cluster: Cluster, members: _Members,
    categories: dict[str, str], statuses: dict[str, str],
) -> _Row:
    parsed = _Row(number)
    title = {}
    description = {}
    for (column, language), value in cells.items():
        if column == "title":
            text = _text(number, _column_name(column, language), value, activities.MAX_TITLE)
            if text:
                title[language or cluster.language] = text
        elif column == "description":
            text = _text(number, _column_name(column, language), value, activities.MAX_DESCRIPTION)
            if text:
                description[language or cluster.language] = text
    if not title:
        raise _Refused(ImportProblem(N_("Row {row}: the title is missing."), row=number))
    start = _date(number, "start_date", cells.get(("start_date", None)))
    due = _date(number, "due_date", cells.get(("due_date", None)))
    if start and due and due < start:
        raise _Refused(ImportProblem(N_("Row {row}: due_date is before start_date."), row=number))
    raw_year = cells.get(("year", None))
    if raw_year is None:
        if not (start or due):
            raise _Refused(ImportProblem(N_("Row {row}: the year is missing."), row=number))
        year = (start or due).year
    else:
        try:
            year = activities.parse_year(raw_year if isinstance(raw_year, int) else str(raw_year))
        except ActivityProblem:
            raise _Refused(ImportProblem(
                N_("Row {row}: year {value} is not a year between 2000 and 2100."), {"value": str(raw_year)}, row=number
            )) from None
    raw_category = cells.get(("category", None))
    category = categories.get(_normalise(str(raw_category))) if raw_category is not None else "other"
    if category is None:
        raise _Refused(ImportProblem(
            N_("Row {row}: category {value} is not known. Use one of: {choices}."),
            {"value": str(raw_category), "choices": ", ".join(CATEGORY_LABELS)}, row=number,
        ))
    raw_status = cells.get(("status", None))
    status = statuses.get(_normalise(str(raw_status))) if raw_status is not None else "planned"
    if status is None:
        raise _Refused(ImportProblem(
            N_("Row {row}: status {value} is not known. Use one of: {choices}."),
            {"value": str(raw_status), "choices": ", ".join(STATUS_LABELS)}, row=number,
        ))
    for column in ("leads", "participants"):
        raw = cells.get((column, None))
        ids = []
        for part in str(raw).split(";") if raw is not None else []:
            part = part.strip()
            if not part:
                continue
            found = members.find(part)
            if not found:
                raise _Refused(ImportProblem(
                    N_("Row {row}: {column}: {value} is not a member of this cluster (write their name or phone number)."),
                    {"column": column, "value": part}, row=number,
                ))
            if len(found) > 1:
                raise _Refused(ImportProblem(
                    N_("Row {row}: {column}: {value} matches {count} members; write their phone number instead."),
                    {"column": column, "value": part, "count": len(found)}, row=number,
                ))
            if found[0].id not in ids:
                ids.append(found[0].id)
        setattr(parsed, column, ids)
    parsed.values = {
        "year": year,
        "title": title,
        "description": description,
        "category": category,
        "start_date": start,
        "due_date": due,
        "venue": _text(number, "venue", cells.get(("venue", None)), activities.MAX_SHORT),
        "target": _text(number, "target", cells.get(("target", None)), activities.MAX_SHORT),
        "status": status,
    }
    return parsed


# ---------------------------------------------------------------- the import


async def import_activities(
    session: AsyncSession, *, cluster: Cluster, filename: str, data: bytes, actor_user_id: int | None
) -> ImportResult:
    """Check every row, and only if all are valid create the activities in one transaction."""
    result = ImportResult()
    try:
        rows = read_rows(filename, bytes(data))
        columns = _header(rows)
    except _Refused as refused:
        result.problems.append(refused.problem)
        return result
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(v is not None for v in row)]
    if not body:
        result.problems.append(ImportProblem(N_("The file has no activities below the header row.")))
        return result
    if len(body) > MAX_ROWS:
        result.problems.append(ImportProblem(N_("The file has more than {limit} rows; split it into smaller files."), {"limit": MAX_ROWS}))
        return result
    found = await session.exec(select(Stakeholder).join(Membership).where(Membership.cluster_id == cluster.id))
    members = _Members(list(found.all()))
    existing = await session.exec(select(Activity).where(Activity.cluster_id == cluster.id))
    taken = {
        (activity.year, _normalise(activities.title_of(activity, cluster.language, cluster.language))): None
        for activity in existing.all()
    }
    categories, statuses = _choice_index(CATEGORY_LABELS), _choice_index(STATUS_LABELS)
    parsed: list[_Row] = []
    for number, row in body:
        cells = {key: row[index] if index < len(row) else None for index, key in columns.items()}
        try:
            item = _parse_row(number, cells, cluster, members, categories, statuses)
        except _Refused as refused:
            result.problems.append(refused.problem)
            continue
        key = (item.values["year"], _normalise(activities.text_in(item.values["title"], cluster.language, cluster.language)))
        if key in taken:
            other = taken[key]
            result.problems.append(
                ImportProblem(N_("Row {row}: the same activity as row {other}."), {"other": other}, row=number)
                if other is not None
                else ImportProblem(
                    N_("Row {row}: the activity {title} for {year} is already in the plan."),
                    {"title": activities.text_in(item.values["title"], cluster.language, cluster.language), "year": item.values["year"]},
                    row=number,
                )
            )
            continue
        taken[key] = number
        parsed.append(item)
    if result.problems:
        return result
    for item in parsed:
        activity = await activities.create_activity(
            session, cluster_id=cluster.id, leads=item.leads, participants=item.participants,
            actor_user_id=actor_user_id, commit=False, **item.values,
        )
        result.activities.append(activity)
    audit.record(
        session, actor_user_id=actor_user_id, action="activity.import", cluster_id=cluster.id,
        detail={"rows": len(parsed)},
    )
    await session.commit()
    return result
