"""Finding a font that covers a text's script, for pictures the bot draws."""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

from PIL import ImageFont

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))

# Unicode block name prefix -> Noto family file stem.
SCRIPT_FONTS = {
    "DEVANAGARI": "NotoSansDevanagari",
    "BENGALI": "NotoSansBengali",
    "GURMUKHI": "NotoSansGurmukhi",
    "GUJARATI": "NotoSansGujarati",
    "TAMIL": "NotoSansTamil",
    "TELUGU": "NotoSansTelugu",
    "KANNADA": "NotoSansKannada",
    "MALAYALAM": "NotoSansMalayalam",
}
LATIN_FONTS = ("NotoSans-Regular", "DejaVuSans")


def script_of(text: str) -> str | None:
    for char in text:
        name = unicodedata.name(char, "")
        for script in SCRIPT_FONTS:
            if name.startswith(script):
                return script
    return None


@cache
def _find(stem: str) -> Path | None:
    for folder in FONT_DIRS:
        if folder.exists():
            for suffix in (".ttf", ".otf"):
                for path in sorted(folder.rglob(stem + suffix)):
                    return path
    return None


def font_for(text: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    script = script_of(text)
    stems = ((SCRIPT_FONTS[script] + "-Regular", SCRIPT_FONTS[script]) if script else ()) + LATIN_FONTS
    for stem in stems:
        path = _find(stem)
        if path is not None:
            # Raqm shapes conjuncts and vowel signs of Indian scripts; basic layout would not.
            layout = ImageFont.Layout.RAQM if script else ImageFont.Layout.BASIC
            return ImageFont.truetype(str(path), size, layout_engine=layout)
    return ImageFont.load_default(size)
