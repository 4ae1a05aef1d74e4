"""CDA side of the skeleton: invite link and poster, member lists, menus, permissions."""

from __future__ import annotations

import io
import json

from PIL import Image

from bot.languages import LANGUAGES
from bot.services.clusters import add_cda
from bot.services.stakeholders import register
from models.base import utcnow
from tests.conftest import CDA_ID
from tests.helpers import make_cluster, tr

ASSIGNED_CDA = 900_000_002


async def add_members(sessionmaker, cluster, count: int) -> None:
    roles = ["msme_owner", "bank", "support_institution"]
    async with sessionmaker() as session:
        for n in range(count):
            await register(
                session,
                telegram_user_id=7_000_000 + n,
                chat_id=7_000_000 + n,
                cluster_id=cluster.id,
                answers={"name": f"Member {n:02d}", "role": roles[n % 3], "product": "brass"},
                language="hi",
                consent_at=utcnow(),
            )


async def test_invite_sends_link_and_qr_poster(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    cda = user_factory(CDA_ID, language_code="en")
    await cda.send("/invite")
    link = f"https://t.me/cluster_test_bot?start={cluster.invite_code}"
    assert link in cda.texts()[0]
    photo = next(call for call in cda.replies if call.method == "sendPhoto")
    image = Image.open(io.BytesIO(photo.files["photo"][1]))
    assert image.format == "PNG" and image.width == 1000 and image.height > 1000
    assert photo.params["caption"] == "Moradabad Brassware"


async def test_cda_with_several_clusters_picks_one(user_factory, sessionmaker):
    await make_cluster(sessionmaker, name="Firozabad Glass")
    second = await make_cluster(sessionmaker, name="Agra Footwear")
    cda = user_factory(CDA_ID, language_code="ta")
    await cda.send("/invite")
    assert cda.last_text() == tr("ta", "Which cluster?")
    await cda.click("Agra Footwear")
    assert second.invite_code in cda.texts()[0]


async def test_stakeholders_lists_by_role_with_pages(user_factory, sessionmaker):
    cluster = await make_cluster(sessionmaker)
    await add_members(sessionmaker, cluster, 23)
    cda = user_factory(CDA_ID, language_code="hi")
    await cda.send("/stakeholders")
    text = cda.last_text()
    assert tr("hi", "MSME owner") + ": 8" in text and tr("hi", "Bank or financial institution") + ": 8" in text
    assert tr("hi", "Support institution (training, testing, R&D)") + ": 7" in text
    assert Translator_plural("hi", 23) in text
    assert tr("hi", "Page {page} of {pages}", page="1", pages="3") in text
    assert text.count("Member ") == 10
    await cda.click("▶")
    assert tr("hi", "Page {page} of {pages}", page="2", pages="3") in cda.last_text()
    assert set(cda.buttons()) == {"◀", "▶"}


def Translator_plural(lang: str, count: int) -> str:
    from bot.i18n import Translator

    t = Translator(lang)
    return t.ngettext("{count} member", "{count} members", count).format(count=t.number(count))


async def test_assigned_cda_sees_only_their_cluster(user_factory, sessionmaker):
    mine = await make_cluster(sessionmaker, name="Ludhiana Bicycles")
    other = await make_cluster(sessionmaker, name="Tiruppur Knitwear")
    async with sessionmaker() as session:
        await add_cda(session, telegram_user_id=ASSIGNED_CDA, cluster=mine)
    cda = user_factory(ASSIGNED_CDA, language_code="pa")
    await cda.send("/stakeholders")
    assert "Ludhiana Bicycles" in cda.last_text()
    # A forged button for the other cluster is refused, and the refusal says so in Punjabi.
    message = cda.bot_messages()[-1]
    await cda.press(f"stk:{other.id}:0", message)
    assert cda.alerts() == [tr("pa", "Sorry, only the CDA of a cluster can use this command.")]
    await cda.press(f"inv:{other.id}:0", message)
    assert cda.alerts() == [tr("pa", "Sorry, only the CDA of a cluster can use this command.")]


async def test_menus_are_published_per_language_and_cda_scope(api, app):
    default = json.dumps({"type": "default"}, sort_keys=True)
    for language in LANGUAGES:
        commands = {c["command"]: c["description"] for c in api.commands[(default, language)]}
        assert "invite" not in commands
        assert commands["forget"] == tr(language, "Erase your data")
    cda_scope = json.dumps({"type": "chat", "chat_id": CDA_ID}, sort_keys=True)
    assert {"invite", "stakeholders"} <= {c["command"] for c in api.commands[(cda_scope, "")]}
