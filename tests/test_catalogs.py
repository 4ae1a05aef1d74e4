"""Every shipped language is complete: no untranslated or fuzzy entry, the same placeholders as
the msgid, the language's plural rule, and a catalog that compiles."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from bot.i18n import Translator
from bot.languages import LANGUAGES

LOCALES = Path(__file__).resolve().parent.parent / "locales"
PLACEHOLDER = re.compile(r"\{(\w*)[^}]*\}")
TAG = re.compile(r"</?\w+>")
TRANSLATED = [code for code in LANGUAGES if code != "en"]


def _catalog(language: str):
    with open(LOCALES / language / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=language)


def _template():
    with open(LOCALES / "messages.pot", "rb") as handle:
        return read_po(handle)


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_is_complete_and_consistent(language):
    catalog = _catalog(language)
    template_ids = {message.id for message in _template() if message.id}
    catalog_ids = {message.id for message in catalog if message.id}
    assert template_ids == catalog_ids, "run `make extract` and translate the new entries"
    problems = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {ids[0]!r}")
        expected = sorted(set(PLACEHOLDER.findall(ids[-1])))
        for text in strings:
            if not text:
                problems.append(f"untranslated: {ids[0]!r}")
            elif sorted(set(PLACEHOLDER.findall(text))) != expected:
                problems.append(f"placeholders differ: {ids[0]!r} -> {text!r}")
            elif sorted(TAG.findall(text)) != sorted(TAG.findall(ids[0])):
                problems.append(f"HTML tags differ: {ids[0]!r} -> {text!r}")
            elif text == ids[0] and re.search("[a-z]{4}", PLACEHOLDER.sub("", text)):
                problems.append(f"left in English: {ids[0]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_compiles_with_the_languages_plural_rule(language):
    catalog = _catalog(language)
    rule = get_plural(language)
    assert (catalog.num_plurals, catalog.plural_expr) == (rule.num_plurals, rule.plural_expr)
    write_mo(io.BytesIO(), catalog)
    t = Translator(language)
    one = t.ngettext("{count} member", "{count} members", 1)
    many = t.ngettext("{count} member", "{count} members", 5)
    assert "{count}" in one and "{count}" in many and "member" not in many


def test_translations_render_in_their_own_script():
    scripts = {"hi": "\u0900", "mr": "\u0900", "bn": "\u0980", "pa": "\u0a00", "gu": "\u0a80",
               "ta": "\u0b80", "te": "\u0c00", "kn": "\u0c80", "ml": "\u0d00"}
    for language, block_start in scripts.items():
        text = Translator(language)("What is your name?")
        start = ord(block_start)
        assert any(start <= ord(char) < start + 0x80 for char in text), (language, text)


def test_numbers_and_dates_use_indian_grouping():
    from datetime import UTC, datetime

    assert Translator("en").number(1234567) == "12,34,567"
    assert Translator("hi").number(1234567) == "12,34,567"
    moment = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)  # 01:30 on 29 Nov in Kolkata
    assert "29" in Translator("ta", "Asia/Kolkata").date(moment)
