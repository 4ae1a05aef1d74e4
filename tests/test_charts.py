"""Charts: valid PNGs for every section, rendered off the event loop, with labels in Indian scripts
drawn with glyphs from a font that has them and shaped (conjuncts, vowel signs), not as boxes."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image, ImageChops, ImageFont

from bot.i18n import Translator
from bot.services import charts, network, stats
from tests.test_stats import build_known_cluster

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VIRAMAS = {"hi": "\u094d", "ta": "\u0bcd"}


def _ink(image: Image.Image) -> Image.Image:
    """The image cropped to its dark pixels (text is dark on white)."""
    grey = image.convert("L").point(lambda v: 255 if v < 200 else 0)
    box = grey.getbbox()
    assert box is not None, "no ink at all"
    return image.crop(box)


def _same(first: Image.Image, second: Image.Image) -> bool:
    if first.size != second.size:
        return False
    return ImageChops.difference(first.convert("RGB"), second.convert("RGB")).getbbox() is None


async def _rendered(sessionmaker, section: str, language: str) -> charts.Rendered:
    known = await build_known_cluster(sessionmaker)
    async with sessionmaker() as session:
        figures = await charts.section_figures(session, cluster=known.cluster, section=section)
    chart = charts.build_chart(section, Translator(language), known.cluster, figures)
    return charts.render(chart)


async def test_every_section_is_a_valid_png(sessionmaker):
    known = await build_known_cluster(sessionmaker)
    t = Translator("ta")
    async with sessionmaker() as session:
        for section in charts.SECTIONS:
            png = await charts.section_png(session, cluster=known.cluster, section=section, t=t)
            assert png.startswith(PNG_SIGNATURE), section
            image = Image.open(io.BytesIO(png))
            image.verify()
            image = Image.open(io.BytesIO(png))
            assert image.format == "PNG" and image.width == charts.WIDTH and image.height > 300
            # Not blank: a chart has plenty of coloured and dark pixels.
            assert len(image.convert("RGB").getcolors(1 << 16) or ()) > 20


@pytest.mark.parametrize(("language", "section"), [("hi", "members"), ("ta", "members"), ("hi", "surveys"), ("ta", "network")])
async def test_indian_script_labels_are_shaped_glyphs_not_boxes(sessionmaker, language, section):
    rendered = await _rendered(sessionmaker, section, language)
    image = Image.open(io.BytesIO(rendered.png)).convert("RGB")
    virama = VIRAMAS[language]
    labels = [placed for placed in rendered.texts if virama in placed.text]
    assert labels, f"no {language} label with a conjunct was drawn"
    for placed in labels:
        runs = charts.font_runs(placed.text, placed.bold)
        # Every character is drawn from a font that has a glyph for it (no .notdef boxes)...
        for run, path in runs:
            assert all(ord(char) in charts._coverage(path) for char in run), (run, path.name)
        script_font = next(path for run, path in runs if virama in run)
        assert script_font.name.startswith("NotoSans" + ("Devanagari" if language == "hi" else "Tamil"))
        left, top, right, bottom = placed.box
        drawn = _ink(image.crop((left - 2, top - 2, right + 2, bottom + 2)))
        # ...the chart holds exactly the text as shaped by raqm with those fonts...
        assert _same(drawn, _ink(charts.text_image(placed.text, size=placed.size, bold=placed.bold, fill=placed.fill))), placed.text
        # ...which is not what a Latin-only font (boxes) or unshaped layout would have drawn.
        latin = charts._font_file("NotoSans", placed.bold)
        assert not _same(drawn, _ink(charts.text_image(placed.text, size=placed.size, bold=placed.bold, fill=placed.fill, font_path=latin)))
        assert not _same(drawn, _ink(charts.text_image(placed.text, size=placed.size, bold=placed.bold, fill=placed.fill,
                                                       layout=ImageFont.Layout.BASIC)))


def test_shaping_changes_the_picture_of_a_conjunct():
    # क्षि: KA + VIRAMA + SSA form one conjunct, and the I vowel sign goes before it.
    shaped = _ink(charts.text_image("क्षि", size=40))
    unshaped = _ink(charts.text_image("क्षि", size=40, layout=ImageFont.Layout.BASIC))
    assert not _same(shaped, unshaped)
    # Unshaped, the I sign is drawn after the consonants with the dotted-circle base; shaped, it
    # stands first. So the left edge of the shaped picture holds the sign's stem, a tall stroke.
    assert charts.text_width("क्षि", 40) < ImageFont.truetype(
        str(charts.font_runs("क्षि")[0][1]), 40, layout_engine=ImageFont.Layout.BASIC).getlength("क्षि")


def test_mixed_scripts_are_split_into_runs_with_covering_fonts():
    private = "\ue000"  # a private-use character: no font has it
    assert not any(ord(private) in charts._coverage(path) for path in charts._candidates(False))
    runs = charts.font_runs(f"MSME इकाई (2) தமிழ்{private}")
    names = [path.name for _, path in runs]
    assert names[0].startswith("NotoSans-") and "Devanagari" in names[1] and "Tamil" in names[-1]
    assert "".join(run for run, _ in runs) == "MSME इकाई (2) தமிழ்"  # drawn as nothing rather than a box


def test_fit_never_cuts_inside_a_syllable():
    text = "सहायक संस्था (प्रशिक्षण, जाँच, अनुसंधान)"
    for width in range(40, 400, 7):
        short = charts.fit(text, 20, width)
        if short != text:
            assert short.endswith("…")
            kept = short[:-1]
            assert not kept.endswith("\u094d") and text.startswith(kept.rstrip())


async def test_charts_render_in_a_worker_thread(sessionmaker, monkeypatch):
    known = await build_known_cluster(sessionmaker)
    threads = []
    real = charts.render

    def spy(chart):
        threads.append(threading.current_thread())
        return real(chart)

    monkeypatch.setattr(charts, "render", spy)
    async with sessionmaker() as session:
        await charts.section_png(session, cluster=known.cluster, section="trust", t=Translator("en"))
    assert threads and threads[0] is not threading.main_thread()


async def test_sections_without_data_draw_nothing(sessionmaker):
    from tests.helpers import make_cluster

    cluster = await make_cluster(sessionmaker)
    async with sessionmaker() as session:
        for section in ("surveys", "plan", "meetings", "trust", "network", "members"):
            assert await charts.section_png(session, cluster=cluster, section=section, t=Translator("hi")) is None


def test_network_drawing_keeps_the_hubs_and_whom_they_share():
    members = {n: network.Member(f"M{n}", "msme_owner") for n in range(1, 200)}
    # Two hubs that share partners 10-19, and a long tail of single ties.
    edges = [(1, n) for n in range(10, 30)] + [(2, n) for n in range(10, 20)] + [(n, n + 1) for n in range(100, 190, 2)]
    graph = network.build_graph(members, edges)
    drawn = charts.drawn_members(graph, limit=25, hubs=2)
    assert drawn[:2] == [1, 2] and set(range(10, 20)) <= set(drawn) and len(drawn) == 25


def test_known_cluster_trust_chart_shows_the_change(sessionmaker):
    waves = [
        stats.TrustWave("trust_linkage", {"en": "Trust"}, "en", 1, 4, {"trust_firms": 3.0}, 2.5),
        stats.TrustWave("trust_linkage", {"en": "Trust"}, "en", 2, 3, {"trust_firms": 4.3}, 3.7, 1.2, 1.2),
    ]
    from models import Cluster

    chart = charts.trust_chart(Translator("en"), Cluster(name="X", invite_code="abcdefgh"), waves)
    rendered = charts.render(chart)
    texts = [placed.text for placed in rendered.texts]
    assert "Change since the baseline: +1.2" in texts and "2.5" in texts and "3.7" in texts
