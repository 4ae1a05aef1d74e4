"""The invite poster: the cluster's name above a QR code of its invite link."""

from __future__ import annotations

import io

import segno
from PIL import Image, ImageDraw

from bot.fonts import font_for

WIDTH = 1000
MARGIN = 60


def _wrap(draw: ImageDraw.ImageDraw, text: str, font) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= WIDTH - 2 * MARGIN:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _draw_centered(draw: ImageDraw.ImageDraw, top: int, text: str, size: int) -> int:
    font = font_for(text, size)
    for line in _wrap(draw, text, font):
        left, upper, right, lower = draw.textbbox((0, 0), line, font=font)
        draw.text(((WIDTH - (right - left)) / 2, top - upper), line, font=font, fill="black")
        top += (lower - upper) + size // 3
    return top


def render_invite_poster(*, title: str, link: str, caption: str) -> bytes:
    """PNG bytes. CPU-bound: call it through asyncio.to_thread."""
    qr = segno.make(link, error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=16, border=2)
    code = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    side = WIDTH - 2 * MARGIN
    code = code.resize((side, side), Image.Resampling.NEAREST)

    poster = Image.new("RGB", (WIDTH, WIDTH + 520), "white")
    draw = ImageDraw.Draw(poster)
    top = _draw_centered(draw, MARGIN, title, 64)
    poster.paste(code, (MARGIN, top + 20))
    top = _draw_centered(draw, top + 40 + side, caption, 36)
    _draw_centered(draw, top + 10, link, 28)
    poster = poster.crop((0, 0, WIDTH, min(poster.height, top + 120)))
    out = io.BytesIO()
    poster.save(out, format="PNG", optimize=True)
    return out.getvalue()
