"""The whole registration over real HTTP: the bot polls a local Bot API stand-in, configured only
through TELEGRAM_BASE_URL / TELEGRAM_BASE_FILE_URL, exactly as in production."""

from __future__ import annotations

import asyncio

from bot.app import build_application, post_init
from tests.botapi import BotApiStandIn, FakeBotApi
from tests.conftest import BOT_TOKEN, make_settings
from tests.helpers import make_cluster, stakeholder_of, tr

USER = 5_550_010


async def wait_for(condition, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("the bot did not answer in time")


async def test_registration_over_http(database_url, sessionmaker):
    cluster = await make_cluster(sessionmaker, name="Tiruppur Knitwear")
    api = FakeBotApi(token=BOT_TOKEN)
    async with BotApiStandIn(api) as stand_in:
        settings = make_settings(
            database_url,
            telegram_base_url=stand_in.base_url,
            telegram_base_file_url=stand_in.base_file_url,
        )
        application = build_application(settings)
        await application.initialize()
        await post_init(application)
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        await application.start()
        try:
            def bot_messages():
                return [m for (chat, _), m in api.messages.items() if chat == USER]

            async def say(text):
                count = len(api.sent(USER))
                api.push_update(api.make_message(USER, text, language_code="ta"))
                await wait_for(lambda: len(api.sent(USER)) > count)

            def find(label):
                for message in reversed(bot_messages()):
                    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                        for button in row:
                            if button["text"] == label:
                                return message, button["callback_data"]
                return None

            async def click(label):
                # Over HTTP the bot may still be sending the message that carries the button.
                message, data = await wait_for(lambda: find(label))
                count = len(api.sent(USER))
                api.push_update(api.make_callback(USER, data, message))
                await wait_for(lambda: len(api.sent(USER)) > count)

            await say(f"/start {cluster.invite_code}")
            await click("தமிழ்")
            await click(tr("ta", "I agree"))
            await say("செல்வி")
            await click(tr("ta", "MSME owner"))
            await say("செல்வி நிட்ஸ்")
            await say("பனியன்")
            await click(tr("ta", "Micro"))
            await say(tr("ta", "Skip"))
            await click(tr("ta", "✅ Confirm"))
            await wait_for(lambda: "செல்வி" in (bot_messages()[-1].get("text") or ""))
            assert tr("ta", "Thank you, {name}! You are now a member of {cluster}.", name="செல்வி", cluster="Tiruppur Knitwear") in bot_messages()[-1]["text"]
        finally:
            await application.updater.stop()
            await application.stop()
            await application.shutdown()
            await application.post_shutdown(application)
    stakeholder = await stakeholder_of(sessionmaker, USER)
    assert (stakeholder.name, stakeholder.language, stakeholder.size_class) == ("செல்வி", "ta", "micro")
