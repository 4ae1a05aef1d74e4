"""Build XLSForm workbooks in tests, the way M&E staff write them in Excel."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

SURVEY_HEADER = ["type", "name", "label::English (en)", "label::Hindi (hi)", "hint::English (en)", "required",
                 "relevant", "constraint", "constraint_message::English (en)", "constraint_message::Hindi (hi)", "parameters"]


def write_xlsform(path: Path, survey_rows: list[list], choice_rows: list[list], *, extra_columns: dict | None = None,
                  form_id: str = "msme_check", version: str = "1") -> Path:
    book = Workbook()
    survey = book.active
    survey.title = "survey"
    header = SURVEY_HEADER + list((extra_columns or {}).keys())
    survey.append(header)
    for row in survey_rows:
        row = row + [""] * (len(SURVEY_HEADER) - len(row))
        extras = [(extra_columns or {})[column].get(row[1], "") for column in (extra_columns or {})]
        survey.append(row + extras)
    choices = book.create_sheet("choices")
    choices.append(["list_name", "name", "label::English (en)", "label::Hindi (hi)"])
    for row in choice_rows:
        choices.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_title", "form_id", "version", "default_language"])
    settings.append(["MSME quick check", form_id, version, "English (en)"])
    book.save(path)
    return path


MSME_CHECK_ROWS = [
    ["begin_group", "profile", "Profile", "प्रोफ़ाइल"],
    ["integer", "workers", "How many workers?", "कितने कामगार?", "Count yourself too", "yes", "", ". >= 1 and . <= 1000",
     "Between 1 and 1000", "1 से 1000 के बीच"],
    ["end_group", ""],
    ["select_multiple problems", "problems", "Which problems do you face?", "आपको कौन सी समस्याएँ हैं?", "", "yes"],
    ["integer", "loan_lakh", "How much loan do you need (lakh)?", "कितना ऋण चाहिए (लाख)?", "", "yes",
     "selected(${problems}, 'credit')", ". > 0", "More than 0", "0 से अधिक"],
    ["select_one yn", "export", "Do you export?", "क्या आप निर्यात करते हैं?", "", "yes"],
    ["note", "thanks", "Thank you!", "धन्यवाद!"],
]
MSME_CHECK_CHOICES = [
    ["problems", "credit", "Credit", "ऋण"],
    ["problems", "skills", "Skilled workers", "कुशल कामगार"],
    ["problems", "power", "Power cuts", "बिजली कटौती"],
    ["yn", "yes", "Yes", "हाँ"],
    ["yn", "no", "No", "नहीं"],
]
