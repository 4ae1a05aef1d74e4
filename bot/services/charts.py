"""PNG charts of the dashboard's sections, labelled in the CDA's language.

matplotlib (Agg, through a Figure of our own, never pyplot's global state) draws the shapes only:
bars, lines, grid, the network's nodes and ties. Every piece of text is then written with Pillow
and the raqm layout engine, because matplotlib's text engine does not shape Indian scripts
(conjuncts and vowel signs come out broken). A label is split into runs by the font that covers
each character, since the Noto fonts for Indian scripts carry no Latin letters and translated
labels mix both ("MSME मालिक").

Rendering is CPU-bound: callers go through :func:`section_png`, which renders in a worker thread.
"""

from __future__ import annotations

import io
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import networkx as nx
import numpy as np
from babel.numbers import format_percent
from fontTools.ttLib import TTFont
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.fonts import FONT_DIRS, SCRIPT_FONTS
from bot.i18n import N_, Translator
from bot.languages import LANGUAGES
from bot.services import network, stats
from bot.services.activities import STATUS_LABELS
from bot.services.fields import ROLE_LABELS
from bot.services.surveys.model import text_in
from models import Cluster
from models.action_plan import ActivityStatus

SECTIONS = ("members", "surveys", "plan", "meetings", "trust", "network")

WIDTH = 1200
DPI = 100
MARGIN = 40
BAR_ROW = 44
INK = "#222222"
MUTED = "#666666"
GRID = "#e4e4e4"
BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#BBBBBB",
)
ROLE_COLORS = {
    "msme_owner": BLUE, "large_enterprise": SKY, "support_institution": GREEN, "bank": ORANGE,
    "local_government": PURPLE, "academia": YELLOW, "service_provider": RED,
    "industry_association": "#8C564B", "other": "#999999",
}
MOST_DRAWN = 60
HUBS = 12
LABELLED = 12
ROUNDS_SHOWN = 12

# matplotlib keeps a few process-wide caches; one chart at a time keeps them consistent.
_RENDER_LOCK = threading.Lock()


# ---------------------------------------------------------------- text with Pillow and raqm

# Characters shared by several scripts stay in the run of the text around them.
_SHARED = frozenset({"\u0964", "\u0965", "\u200c", "\u200d", "\u25cc"})
LATIN_STEMS = ("NotoSans", "DejaVuSans")


# matplotlib ships DejaVu Sans: Latin text still renders where no Noto font is installed (Indian
# scripts then need `make fonts`; their characters are left out rather than drawn as boxes).
_FOLDERS = (*FONT_DIRS, Path(matplotlib.get_data_path()) / "fonts" / "ttf")


@cache
def _font_file(stem: str, bold: bool) -> Path | None:
    if stem == "DejaVuSans":
        names = ["DejaVuSans-Bold"] if bold else ["DejaVuSans"]
    else:
        names = [f"{stem}-Bold" if bold else f"{stem}-Regular", stem]
    for name in names:
        for folder in _FOLDERS:
            if folder.exists():
                for suffix in (".ttf", ".otf"):
                    for path in sorted(folder.rglob(name + suffix)):
                        return path
    return None


@cache
def _coverage(path: Path) -> frozenset[int]:
    with TTFont(str(path), lazy=True) as font:
        return frozenset(font.getBestCmap())


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM)


def _script(char: str) -> str | None:
    if char in _SHARED:
        return None
    name = unicodedata.name(char, "")
    for script in SCRIPT_FONTS:
        if name.startswith(script):
            return script
    return None


def _candidates(bold: bool) -> list[Path]:
    paths = [_font_file(stem, bold) for stem in LATIN_STEMS]
    paths += [_font_file(stem, bold) for stem in SCRIPT_FONTS.values()]
    return [path for path in paths if path is not None]


@lru_cache(maxsize=4096)
def font_runs(text: str, bold: bool = False) -> tuple[tuple[str, Path], ...]:
    """The text cut into runs, each with a font file that has glyphs for all of it.

    Characters no installed font covers (emoji, say) are left out rather than drawn as boxes.
    """
    runs: list[tuple[str, Path]] = []
    current: Path | None = None
    for char in text:
        code = ord(char)
        script = _script(char)
        path: Path | None = None
        if script is not None:
            path = _font_file(SCRIPT_FONTS[script], bold)
        elif current is not None and (code in _coverage(current) or char in "\u200c\u200d"):
            path = current
        if path is None or code not in _coverage(path):
            path = next((candidate for candidate in _candidates(bold) if code in _coverage(candidate)), None)
        if path is None:
            if char.isspace() and current is not None:
                path = current
            else:
                continue
        if runs and runs[-1][1] == path:
            runs[-1] = (runs[-1][0] + char, path)
        else:
            runs.append((char, path))
        current = path
    return tuple(runs)


def text_width(text: str, size: int, bold: bool = False) -> float:
    return sum(_font(path, size).getlength(run) for run, path in font_runs(text, bold))


def _metrics(size: int, bold: bool) -> tuple[int, int]:
    path = _font_file("NotoSans", bold) or _candidates(bold)[0]
    return _font(path, size).getmetrics()


_VIRAMA = "VIRAMA"


def fit(text: str, size: int, width: float, bold: bool = False) -> str:
    """The text, shortened with an ellipsis to fit the width, never cut inside a syllable."""
    if text_width(text, size, bold) <= width:
        return text
    cut = len(text)
    while cut > 1:
        cut -= 1
        following, previous = text[cut] if cut < len(text) else "", text[cut - 1]
        if following and unicodedata.category(following) in ("Mn", "Mc"):
            continue
        if _VIRAMA in unicodedata.name(previous, "") or previous in "\u200c\u200d":
            continue
        candidate = text[:cut].rstrip() + "…"
        if text_width(candidate, size, bold) <= width:
            return candidate
    return "…"


@dataclass(frozen=True)
class Placed:
    """A text written on the picture and the box it covers (tests look at these pixels)."""

    text: str
    box: tuple[int, int, int, int]
    size: int
    bold: bool
    fill: str


def draw_text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, *, size: int, anchor: str = "lt",
    fill: str = INK, bold: bool = False, halo: bool = False,
) -> Placed:
    """Write text with its horizontal anchor l/m/r and vertical anchor t/m/b (as in Pillow)."""
    runs = [(run, _font(path, size)) for run, path in font_runs(text, bold)]
    width = sum(font.getlength(run) for run, font in runs)
    ascent, descent = _metrics(size, bold)
    x, y = xy
    left = {"l": x, "m": x - width / 2, "r": x - width}[anchor[0]]
    baseline = {"t": y + ascent, "m": y + (ascent - descent) / 2, "b": y - descent}[anchor[1]]
    # Whole pixels, so the same text always rasterises the same way.
    pen, baseline = round(left), round(baseline)
    box = [pen, baseline - ascent, pen, baseline + descent]
    for run, font in runs:
        extra = {"stroke_width": 3, "stroke_fill": "white"} if halo else {}
        draw.text((pen, baseline), run, font=font, fill=fill, anchor="ls", **extra)
        ink = draw.textbbox((pen, baseline), run, font=font, anchor="ls")
        box = [min(box[0], ink[0]), min(box[1], ink[1]), max(box[2], ink[2]), max(box[3], ink[3])]
        pen += round(font.getlength(run))
    return Placed(text, (box[0], box[1], box[2], box[3]), size, bold, fill)


def text_image(text: str, *, size: int, bold: bool = False, fill: str = INK, layout: ImageFont.Layout | None = None,
               font_path: Path | None = None) -> Image.Image:
    """The text alone on white, cropped to its ink: the reference tests compare charts against.

    With ``font_path`` or ``layout`` given, every character uses that one font or layout engine,
    which is how a renderer without script runs or without shaping would draw it."""
    canvas = Image.new("RGB", (int(text_width(text, size, bold)) + 4 * size, 4 * size), "white")
    draw = ImageDraw.Draw(canvas)
    if font_path is None and layout is None:
        draw_text(draw, (size, size), text, size=size, bold=bold, fill=fill)
    else:
        runs = ((text, font_path),) if font_path else font_runs(text, bold)
        pen = size
        for run, path in runs:
            font = ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM if layout is None else layout)
            draw.text((pen, 2 * size), run, font=font, fill=fill, anchor="ls")
            pen += round(font.getlength(run))
    box = Image.eval(canvas.convert("L"), lambda v: 255 - v).getbbox()
    return canvas.crop(box) if box else canvas.crop((0, 0, 1, 1))


# ---------------------------------------------------------------- chart description


@dataclass
class Series:
    label: str
    values: list[float | None]
    color: str
    # One colour per bar instead of the series colour, e.g. for activity statuses.
    bar_colors: list[str] | None = None


def _series_legend_height(series: list[Series]) -> int:
    return legend_height([(item.label, item.color) for item in series]) if len(series) > 1 else 0


@dataclass
class BarPanel:
    """Horizontal bars, one row per label; several series are stacked."""

    title: str
    labels: list[str]
    series: list[Series]
    value_texts: list[str]
    tick_format: Callable[[float], str]
    xmax: float | None = None

    def height(self) -> int:
        return 56 + BAR_ROW * len(self.labels) + 40 + _series_legend_height(self.series)


@dataclass
class LinePanel:
    title: str
    x_labels: list[str]
    series: list[Series]
    value_format: Callable[[float], str]
    tick_format: Callable[[float], str]
    y_range: tuple[float, float] | None = None

    def height(self) -> int:
        return 56 + 360 + 50 + _series_legend_height(self.series)


@dataclass
class GraphPanel:
    title: str
    positions: dict[int, tuple[float, float]]
    ties: list[tuple[int, int]]
    colors: dict[int, str]
    sizes: dict[int, float]
    labels: dict[int, str]
    legend: list[tuple[str, str]]

    def height(self) -> int:
        return 56 + 760 + 44 + legend_height(self.legend)


Panel = BarPanel | LinePanel | GraphPanel


@dataclass
class Chart:
    title: str
    subtitle: list[str] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Rendered:
    png: bytes
    size: tuple[int, int]
    texts: list[Placed]


# ---------------------------------------------------------------- rendering


class _Layout:
    """Pixel boxes (image coordinates, y down) turned into matplotlib axes and back."""

    def __init__(self, figure: Figure, height: int) -> None:
        self.figure, self.height = figure, height

    def axes(self, left: float, top: float, right: float, bottom: float):
        return self.figure.add_axes(
            (left / WIDTH, 1 - bottom / self.height, (right - left) / WIDTH, (bottom - top) / self.height)
        )

    def point(self, axes, x: float, y: float) -> tuple[float, float]:
        px, py = axes.transData.transform((x, y))
        return float(px), self.height - float(py)


def _legend_layout(items: Sequence[tuple[str, str]]) -> list[tuple[float, int]]:
    """Where each legend item goes: its left edge and its row, filling rows from the left."""
    places, x, row = [], MARGIN, 0
    for label, _ in items:
        width = text_width(label, 20) + 56
        if x + width > WIDTH - MARGIN and x > MARGIN:
            x, row = MARGIN, row + 1
        places.append((x, row))
        x += width
    return places


def legend_height(items: Sequence[tuple[str, str]]) -> int:
    places = _legend_layout(items)
    return 40 * (places[-1][1] + 1) if places else 0


def _legend(texts: list, top: float, items: Sequence[tuple[str, str]]) -> float:
    """Queue legend items (colour squares and labels); returns the top of what comes next."""
    for (label, color), (x, row) in zip(items, _legend_layout(items), strict=True):
        y = top + 40 * row
        texts.append(("square", (x, y + 6, x + 20, y + 26), color))
        texts.append(("text", (x + 28, y + 16), label, 20, "lm", INK, False, False))
    return top + legend_height(items)


def _bar_panel(layout: _Layout, texts: list, panel: BarPanel, top: float) -> None:
    texts.append(("text", (MARGIN, top + 8), fit(panel.title, 26, WIDTH - 2 * MARGIN, bold=True), 26, "lt", INK, True, False))
    top += 56
    if len(panel.series) > 1:
        top = _legend(texts, top, [(series.label, series.color) for series in panel.series])
    label_width = min(max((text_width(label, 20) for label in panel.labels), default=0) + 16, WIDTH * 0.42)
    value_width = max((text_width(value, 20) for value in panel.value_texts), default=0) + 24
    left, right = MARGIN + label_width, WIDTH - MARGIN - value_width
    bottom = top + BAR_ROW * len(panel.labels)
    axes = layout.axes(left, top, right, bottom)
    rows = np.arange(len(panel.labels))
    stacked = np.zeros(len(panel.labels))
    for series in panel.series:
        values = np.array([value or 0.0 for value in series.values], dtype=float)
        axes.barh(rows, values, left=stacked, height=0.62, color=series.bar_colors or series.color, zorder=2)
        stacked += values
    largest = float(stacked.max()) if len(stacked) else 0.0
    axes.set_xlim(0, panel.xmax or max(largest, 1.0))
    axes.set_ylim(len(panel.labels) - 0.5, -0.5)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=panel.xmax is None))
    axes.grid(axis="x", color=GRID, zorder=0)
    axes.tick_params(labelbottom=False, labelleft=False, length=0)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    axes.spines["bottom"].set_color(GRID)
    texts.append(("bars", axes, panel, stacked, left, bottom))


def _line_panel(layout: _Layout, texts: list, panel: LinePanel, top: float) -> None:
    texts.append(("text", (MARGIN, top + 8), fit(panel.title, 26, WIDTH - 2 * MARGIN, bold=True), 26, "lt", INK, True, False))
    top += 56
    if len(panel.series) > 1:
        top = _legend(texts, top, [(series.label, series.color) for series in panel.series])
    left, right, bottom = MARGIN + 70, WIDTH - MARGIN - 30, top + 360
    axes = layout.axes(left, top, right, bottom)
    xs = np.arange(len(panel.x_labels))
    for number, series in enumerate(panel.series):
        values = np.array([np.nan if value is None else value for value in series.values], dtype=float)
        axes.plot(xs, values, color=series.color, linewidth=3.5 if number == 0 else 2,
                  marker="o", markersize=9 if number == 0 else 6, zorder=3 if number == 0 else 2)
    if panel.y_range:
        low, high = panel.y_range
        axes.set_ylim(low - (high - low) * 0.05, high + (high - low) * 0.12)
        axes.set_yticks(np.arange(low, high + 0.001, 1 if high - low <= 10 else (high - low) / 5))
    else:
        axes.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        finite = [value for series in panel.series for value in series.values if value is not None]
        axes.set_ylim(0, max(finite + [1]) * 1.15)
    axes.set_xlim(-0.4, max(len(xs) - 1, 0) + 0.4)
    axes.grid(axis="y", color=GRID, zorder=0)
    axes.tick_params(labelbottom=False, labelleft=False, length=0)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(GRID)
    texts.append(("lines", axes, panel, left, bottom))


def _graph_panel(layout: _Layout, texts: list, panel: GraphPanel, top: float) -> None:
    texts.append(("text", (MARGIN, top + 8), fit(panel.title, 26, WIDTH - 2 * MARGIN, bold=True), 26, "lt", INK, True, False))
    top += 56
    side = 760
    left = (WIDTH - side) / 2
    axes = layout.axes(left, top, left + side, top + side)
    axes.set_xlim(-1.15, 1.15)
    axes.set_ylim(-1.15, 1.15)
    axes.set_axis_off()
    segments = [(panel.positions[a], panel.positions[b]) for a, b in panel.ties]
    axes.add_collection(LineCollection(segments, colors="#9a9a9a", linewidths=1.0, alpha=0.7, zorder=1))
    nodes = list(panel.positions)
    axes.scatter(
        [panel.positions[node][0] for node in nodes], [panel.positions[node][1] for node in nodes],
        s=[panel.sizes[node] for node in nodes], c=[panel.colors[node] for node in nodes],
        edgecolors="white", linewidths=1.2, zorder=2,
    )
    texts.append(("graph", axes, panel))
    # Room for the names under the lowest nodes.
    _legend(texts, top + side + 44, panel.legend)


def _write(layout: _Layout, draw: ImageDraw.ImageDraw, item: tuple, placed: list[Placed]) -> None:
    kind = item[0]
    if kind == "text":
        _, xy, text, size, anchor, fill, bold, halo = item
        placed.append(draw_text(draw, xy, text, size=size, anchor=anchor, fill=fill, bold=bold, halo=halo))
    elif kind == "square":
        draw.rectangle(item[1], fill=item[2])
    elif kind == "bars":
        _, axes, panel, stacked, left, bottom = item
        for row, label in enumerate(panel.labels):
            _, y = layout.point(axes, 0, row)
            placed.append(draw_text(draw, (left - 12, y), fit(label, 20, left - 12 - MARGIN), size=20, anchor="rm"))
            end, _ = layout.point(axes, stacked[row], row)
            placed.append(draw_text(draw, (end + 10, y), panel.value_texts[row], size=20, anchor="lm", fill=MUTED))
        low, high = axes.get_xlim()
        for tick in axes.get_xticks():
            if low <= tick <= high:
                x, _ = layout.point(axes, tick, 0)
                placed.append(draw_text(draw, (x, bottom + 8), panel.tick_format(tick), size=17, anchor="mt", fill=MUTED))
    elif kind == "lines":
        _, axes, panel, left, bottom = item
        low, high = axes.get_ylim()
        for tick in axes.get_yticks():
            if low <= tick <= high:
                _, y = layout.point(axes, 0, tick)
                placed.append(draw_text(draw, (left - 12, y), panel.tick_format(tick), size=17, anchor="rm", fill=MUTED))
        count = len(panel.x_labels)
        room = (WIDTH - 2 * MARGIN - 100) / max(count, 1)
        widest = max((text_width(label, 18) for label in panel.x_labels), default=0)
        every = max(1, int(np.ceil((widest + 16) / room)))
        for index, label in enumerate(panel.x_labels):
            if index % every == 0 or index == count - 1:
                x, _ = layout.point(axes, index, 0)
                placed.append(draw_text(draw, (x, bottom + 10), fit(label, 18, max(room * every - 8, 40)), size=18, anchor="mt", fill=MUTED))
        main = panel.series[0]
        for index, value in enumerate(main.values):
            if value is not None and (count <= 12 or index == count - 1):
                x, y = layout.point(axes, index, value)
                placed.append(draw_text(draw, (x, y - 14), panel.value_format(value), size=19, anchor="mb", fill=main.color, bold=True, halo=True))
    elif kind == "graph":
        _, axes, panel = item
        for node, label in panel.labels.items():
            x, y = layout.point(axes, *panel.positions[node])
            offset = (panel.sizes[node] ** 0.5) / 2 + 4
            placed.append(draw_text(draw, (x, y + offset), fit(label, 17, 220), size=17, anchor="mt", halo=True))


def render(chart: Chart) -> Rendered:
    """The chart as PNG bytes, with where each text went. CPU-bound: call it off the event loop."""
    subtitle_height = 34 * len(chart.subtitle)
    height = MARGIN + 50 + subtitle_height + 20 + sum(panel.height() + 24 for panel in chart.panels) + MARGIN
    with _RENDER_LOCK:
        figure = Figure(figsize=(WIDTH / DPI, height / DPI), dpi=DPI, facecolor="white")
        canvas = FigureCanvasAgg(figure)
        layout = _Layout(figure, height)
        queued: list[tuple] = [("text", (MARGIN, MARGIN), fit(chart.title, 34, WIDTH - 2 * MARGIN, bold=True), 34, "lt", INK, True, False)]
        top = MARGIN + 50
        for line in chart.subtitle:
            queued.append(("text", (MARGIN, top), line, 22, "lt", MUTED, False, False))
            top += 34
        top += 20
        for panel in chart.panels:
            if isinstance(panel, BarPanel):
                _bar_panel(layout, queued, panel, top)
            elif isinstance(panel, LinePanel):
                _line_panel(layout, queued, panel, top)
            else:
                _graph_panel(layout, queued, panel, top)
            top += panel.height() + 24
        canvas.draw()
        image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
        draw = ImageDraw.Draw(image)
        placed: list[Placed] = []
        for item in queued:
            _write(layout, draw, item, placed)
        figure.clear()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return Rendered(out.getvalue(), image.size, placed)


# ---------------------------------------------------------------- the sections


def signed(t: Translator, value: float, digits: int = 1) -> str:
    """A change with its sign: +1.2, −3, ±0."""
    rounded = round(value, digits)
    if rounded == 0:
        return "±" + t.number(0)
    return ("+" if rounded > 0 else "−") + t.number(abs(rounded))


def _integer_ticks(t: Translator) -> Callable[[float], str]:
    return lambda value: t.number(int(round(value)))


def _percent_ticks(t: Translator) -> Callable[[float], str]:
    return lambda value: t.percent(value)


def _survey_title(t: Translator, title: dict[str, str], fallback: str) -> str:
    return text_in(title, t.language, fallback)


def round_label(t: Translator, wave: int, *, baseline: bool = True) -> str:
    """Trust and linkage rounds measure change against the first, the baseline."""
    if baseline and wave == 1:
        return t("Baseline")
    return t("Round {number}").format(number=t.number(wave))


def members_chart(t: Translator, cluster: Cluster, figures: stats.MemberFigures) -> Chart | None:
    if not figures.total:
        return None
    chart = Chart(
        t("Members of {cluster}").format(cluster=cluster.name),
        [t("{count} members, {unreachable} unreachable ({share})").format(
            count=t.number(figures.total), unreachable=t.number(figures.unreachable),
            share=t.percent(figures.unreachable_share))],
    )
    roles = list(figures.by_role.items())
    chart.panels.append(BarPanel(
        t("By role"), [t(ROLE_LABELS.get(role, ROLE_LABELS["other"])) for role, _ in roles],
        [Series(t("Members"), [count for _, count in roles], BLUE)],
        [t.number(count) for _, count in roles], _integer_ticks(t),
    ))
    languages = list(figures.by_language.items())
    chart.panels.append(BarPanel(
        t("By language"), [LANGUAGES.get(code, code) for code, _ in languages],
        [Series(t("Members"), [count for _, count in languages], GREEN)],
        [t.number(count) for _, count in languages], _integer_ticks(t),
    ))
    if figures.joined_by_month:
        running, totals = 0, []
        for _, count in figures.joined_by_month:
            running += count
            totals.append(running)
        months = figures.joined_by_month[-24:]
        chart.panels.append(LinePanel(
            t("Members over time"), [t.date(month, "MMM y") for month, _ in months],
            [Series(t("Members"), totals[-len(months):], BLUE)],
            lambda value: t.number(int(round(value))), _integer_ticks(t),
        ))
    return chart


def surveys_chart(t: Translator, cluster: Cluster, rates: list[stats.WaveRate]) -> Chart | None:
    rates = rates[-ROUNDS_SHOWN:]
    if not rates:
        return None
    labels = [
        t("{survey} — {round}").format(
            survey=_survey_title(t, rate.title, rate.default_language), round=round_label(t, rate.wave, baseline=False))
        for rate in rates
    ]
    return Chart(
        t("Survey responses in {cluster}").format(cluster=cluster.name),
        [t("Share of the people invited who answered, per survey round")],
        [BarPanel(
            t("Response rate per survey round"), labels,
            [Series(t("Answered"), [rate.rate for rate in rates], GREEN),
             Series(t("Not answered"), [1 - rate.rate if rate.invited else 0 for rate in rates], "#E3E3E3")],
            [t("{completed} of {invited} ({rate})").format(
                completed=t.number(rate.completed), invited=t.number(rate.invited), rate=t.percent(rate.rate))
             for rate in rates],
            _percent_ticks(t), xmax=1.0,
        )],
    )


def plan_chart(t: Translator, cluster: Cluster, plan: stats.PlanFigures) -> Chart | None:
    if not plan.total and not plan.reports_received:
        return None
    subtitle = [t.ngettext("{count} activity in the plan", "{count} activities in the plan", plan.total).format(count=t.number(plan.total))]
    if plan.on_time_share is not None:
        subtitle.append(t("Done on time: {share}").format(share=t.percent(plan.on_time_share)))
    subtitle.append(t("Overdue: {count}").format(count=t.number(plan.overdue_count)))
    statuses = [status for status in plan.by_status if status in STATUS_LABELS or plan.by_status[status]]
    colors = {ActivityStatus.PLANNED: SKY, ActivityStatus.IN_PROGRESS: ORANGE, ActivityStatus.DONE: GREEN, ActivityStatus.CANCELLED: GREY}
    return Chart(
        t("Action plan of {cluster}").format(cluster=cluster.name), subtitle,
        [
            BarPanel(
                t("Activities by status"), [t(STATUS_LABELS[s]) if s in STATUS_LABELS else s for s in statuses],
                [Series(t("Activities"), [plan.by_status[s] for s in statuses], BLUE,
                        [colors.get(s, GREY) for s in statuses])],
                [t.number(plan.by_status[s]) for s in statuses], _integer_ticks(t),
            ),
            BarPanel(
                t("Completion reports"), [t("Received"), t("Verified")],
                [Series(t("Reports"), [plan.reports_received, plan.reports_verified], GREEN)],
                [t.number(plan.reports_received), t.number(plan.reports_verified)], _integer_ticks(t),
            ),
        ],
    )


def meetings_chart(t: Translator, cluster: Cluster, meetings: list[stats.MeetingFigures]) -> Chart | None:
    if not meetings:
        return None
    shown = list(reversed(meetings))  # oldest at the top reads like a calendar
    return Chart(
        t("Meetings of {cluster}").format(cluster=cluster.name),
        [t("Replies of the people invited, per meeting")],
        [BarPanel(
            t("Replies per meeting"),
            [t("{title} — {date}").format(title=meeting.title, date=t.date(meeting.starts_at, "medium")) for meeting in shown],
            [Series(t("Yes"), [m.yes for m in shown], GREEN), Series(t("Maybe"), [m.maybe for m in shown], ORANGE),
             Series(t("No"), [m.no for m in shown], RED), Series(t("No reply"), [m.no_reply for m in shown], "#D9D9D9")],
            [t.ngettext("{count} invited", "{count} invited", m.invited).format(count=t.number(m.invited)) for m in shown],
            _integer_ticks(t),
        )],
    )


TRUST_LABELS = {
    "trust_firms": N_("Trust in other firms"),
    "trust_institutions": N_("Trust in institutions"),
}


def trust_chart(t: Translator, cluster: Cluster, waves: list[stats.TrustWave]) -> Chart | None:
    waves = [wave for wave in waves if wave.index is not None]
    if not waves:
        return None
    form = waves[-1].form_id
    waves = [wave for wave in waves if wave.form_id == form]
    latest = waves[-1]
    subtitle = [t("Mean of the trust answers, from 1 (not at all) to 5 (fully)")]
    if latest.change_from_baseline is not None:
        subtitle.append(t("Change since the baseline: {change}").format(change=signed(t, latest.change_from_baseline)))
    names = sorted({name for wave in waves for name in wave.means})
    series = [Series(t("Trust index"), [wave.index for wave in waves], BLUE)]
    palette = iter((ORANGE, GREEN, PURPLE, SKY, RED))
    for name in names:
        label = t(TRUST_LABELS[name]) if name in TRUST_LABELS else name
        series.append(Series(label, [wave.means.get(name) for wave in waves], next(palette, GREY)))
    return Chart(
        t("Trust index of {cluster}").format(cluster=cluster.name), subtitle,
        [LinePanel(
            _survey_title(t, latest.title, latest.default_language), [round_label(t, wave.wave) for wave in waves], series,
            lambda value: t.number(round(value, 1)), lambda value: t.number(int(round(value))), y_range=(1, 5),
        )],
    )


def drawn_members(graph: nx.Graph, limit: int = MOST_DRAWN, hubs: int = HUBS) -> list[int]:
    """Who to draw: the best-connected members, then, one by one, whoever has the most ties to
    those already drawn. In a large cluster that shows the core people and whom they share,
    instead of sixty hubs with no tie among them. Most connected first."""
    ranked = sorted((node for node, degree in graph.degree() if degree), key=lambda node: (-graph.degree(node), node))
    chosen = ranked[:hubs]
    taken = set(chosen)
    links: dict[int, int] = {}
    for node in chosen:
        for neighbour in graph[node]:
            if neighbour not in taken:
                links[neighbour] = links.get(neighbour, 0) + 1
    while len(chosen) < limit:
        if links:
            best = max(links, key=lambda node: (links[node], graph.degree(node), -node))
            del links[best]
        else:
            best = next((node for node in ranked if node not in taken), None)
            if best is None:
                break
        chosen.append(best)
        taken.add(best)
        for neighbour in graph[best]:
            if neighbour not in taken:
                links[neighbour] = links.get(neighbour, 0) + 1
    return sorted(chosen, key=lambda node: (-graph.degree(node), node))


def _graph_panel_for(t: Translator, data: network.LinkageData, wave: network.WaveEdges) -> GraphPanel | None:
    with network.graph_of(data.members, wave.edges) as graph:
        drawn = drawn_members(graph)
        if not drawn:
            return None
        degree = {node: graph.degree(node) for node in drawn}
        ties = list(graph.subgraph(drawn).edges())
    layout = nx.Graph(ties)
    layout.add_nodes_from(drawn)
    # Gravity keeps separate groups of members on the page instead of flung to its corners.
    positions = nx.forceatlas2_layout(layout, seed=7, max_iter=300, gravity=4.0, scaling_ratio=2.0)
    layout.clear()
    if len(drawn) > 1:
        coordinates = np.array([positions[node] for node in drawn])
        coordinates -= np.median(coordinates, axis=0)
        # A member whose ties all lead outside the drawing drifts far off; scaling to the bulk and
        # clipping keeps the rest from shrinking into the middle.
        spread = np.percentile(np.abs(coordinates), 92, axis=0)
        coordinates = np.clip(coordinates / np.maximum(spread, 1e-9), -1.08, 1.08)
        positions = {node: (float(x), float(y)) for node, (x, y) in zip(drawn, coordinates, strict=True)}
    else:
        positions = {drawn[0]: (0.0, 0.0)}
    roles = {node: data.members[node].role if node in data.members else "other" for node in drawn}
    present = [role for role in ROLE_LABELS if role in set(roles.values())]
    return GraphPanel(
        title=t("The most connected members and the people they work with ({count})").format(count=t.number(len(drawn))),
        positions=positions,
        ties=ties,
        colors={node: ROLE_COLORS.get(roles[node], GREY) for node in drawn},
        sizes={node: 60 + 640 * degree[node] / degree[drawn[0]] for node in drawn},
        labels={node: data.members[node].name for node in drawn[:LABELLED] if node in data.members},
        legend=[(t(ROLE_LABELS[role]), ROLE_COLORS[role]) for role in present],
    )


def network_chart(t: Translator, cluster: Cluster, data: network.LinkageData) -> Chart | None:
    if not data.waves:
        return None
    measured = network.measure(data)
    form = measured[-1].form_id
    waves = [(edges, figures) for edges, figures in zip(data.waves, measured, strict=True) if figures.form_id == form]
    latest_edges, latest = waves[-1]
    subtitle = [
        t("{round}: {ties} ties among {members} members, density {density}").format(
            round=round_label(t, latest.wave), ties=t.number(latest.ties), members=t.number(latest.members),
            density=percent(t, latest.density)),
    ]
    if latest.firm_share is not None:
        subtitle.append(t("Firms with a tie to a support institution or bank: {share}").format(share=t.percent(latest.firm_share)))
    panels: list[Panel] = []
    graph = _graph_panel_for(t, data, latest_edges)
    if graph is not None:
        panels.append(graph)
    labels = [round_label(t, figures.wave) for _, figures in waves]
    panels.append(BarPanel(
        t("Ties per round"), labels, [Series(t("Ties"), [figures.ties for _, figures in waves], BLUE)],
        [t.number(figures.ties) for _, figures in waves], _integer_ticks(t),
    ))
    if latest.firm_share is not None:
        shares = [figures.firm_share or 0.0 for _, figures in waves]
        panels.append(BarPanel(
            t("Firms with a tie to a support institution or bank"), labels,
            [Series(t("Firms"), shares, GREEN)], [t.percent(share) for share in shares], _percent_ticks(t), xmax=1.0,
        ))
    return Chart(t("Linkage network of {cluster}").format(cluster=cluster.name), subtitle, panels)


def percent(t: Translator, value: float) -> str:
    """A share with up to two decimals, for small ones such as a network's density."""
    return format_percent(round(value, 4), locale=t.locale, decimal_quantization=False)


def build_chart(section: str, t: Translator, cluster: Cluster, figures) -> Chart | None:
    builders = {
        "members": members_chart, "surveys": surveys_chart, "plan": plan_chart,
        "meetings": meetings_chart, "trust": trust_chart, "network": network_chart,
    }
    return builders[section](t, cluster, figures)


async def section_figures(session: AsyncSession, *, cluster: Cluster, section: str):
    if section == "members":
        return await stats.member_figures(session, cluster=cluster)
    if section == "surveys":
        return await stats.survey_rates(session, cluster=cluster)
    if section == "plan":
        return await stats.plan_figures(session, cluster=cluster)
    if section == "meetings":
        return await stats.meeting_figures(session, cluster=cluster)
    if section == "trust":
        return await stats.trust_index(session, cluster=cluster)
    if section == "network":
        return await network.load_linkage(session, cluster=cluster)
    raise ValueError(f"unknown chart section {section!r}")


def _render_section(section: str, t: Translator, cluster: Cluster, figures) -> bytes | None:
    chart = build_chart(section, t, cluster, figures)
    return render(chart).png if chart is not None else None


async def section_png(session: AsyncSession, *, cluster: Cluster, section: str, t: Translator) -> bytes | None:
    """The section's chart as PNG bytes, or None when it has nothing to show yet."""
    with stats.collector_paused():
        figures = await section_figures(session, cluster=cluster, section=section)
        return await stats.off_loop(_render_section, section, t, cluster, figures)
