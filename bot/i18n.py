"""Translations and locale-aware formatting, looked up per user, never from a global.

Strings in code are marked with ``_`` / ``ngettext`` (called on a :class:`Translator`) or, for
module-level constants translated later, with :func:`N_`.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

from bot.languages import LANGUAGES

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet."""
    return message


@cache
def _catalog(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    catalog = Translations.load(str(LOCALES_DIR), [language], DOMAIN)
    if not isinstance(catalog, Translations):
        raise RuntimeError(
            f"No compiled catalog for {language!r} in {LOCALES_DIR}; run `make catalogs`."
        )
    return catalog


class Translator:
    """Everything a reply needs to speak one user's language."""

    def __init__(self, language: str, timezone: str = "Asia/Kolkata") -> None:
        self.language = language if language in LANGUAGES else "en"
        self.zone = ZoneInfo(timezone)
        # The Indian English and Indian-language locales group digits as 12,34,567.
        self.locale = Locale.parse(f"{self.language}_IN")
        self._catalog = _catalog(self.language)
        self._small_numbers: dict[int, str] = {}

    def gettext(self, message: str) -> str:
        return self._catalog.gettext(message)

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self._catalog.ngettext(singular, plural, count)

    def number(self, value: float | int) -> str:
        # Progress ("3 / 20"), counts and pages are small whole numbers, formatted on every
        # question: Babel's formatting is worth doing once per number.
        if type(value) is int and 0 <= value < 1000:
            text = self._small_numbers.get(value)
            if text is None:
                text = self._small_numbers[value] = format_decimal(value, locale=self.locale)
            return text
        return format_decimal(value, locale=self.locale)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.locale)

    def date(self, value: date | datetime, style: str = "medium") -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.zone).date()
        return format_date(value, format=style, locale=self.locale)

    def datetime(self, value: datetime, style: str = "medium") -> str:
        return format_datetime(value, format=style, tzinfo=self.zone, locale=self.locale)


@lru_cache(maxsize=64)
def translator(language: str, timezone: str = "Asia/Kolkata") -> Translator:
    """A shared Translator per language and zone; it holds no per-user state."""
    return Translator(language, timezone)
