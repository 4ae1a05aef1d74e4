"""Fast checks that the fake Bot API behaves enough like Telegram for PTB to use it."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import CommandHandler, ContextTypes

from tests.botapi import BotApiStandIn, FakeBotApi, recording_application_builder, recording_bot

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="vote:yes")]])


def _seconds(retry_after: int | dtm.timedelta) -> float:
    # PTB 22 is migrating RetryAfter.retry_after from int to timedelta (hence the warning filter).
    return retry_after.total_seconds() if isinstance(retry_after, dtm.timedelta) else retry_after


@pytest.mark.asyncio
async def test_recording_request_get_me_and_inline_keyboard() -> None:
    api = FakeBotApi()
    async with recording_bot(api) as bot:
        me = await bot.get_me()
        assert (me.id, me.username, me.is_bot) == (123, "cluster_test_bot", True)

        message = await bot.send_message(42, "Vote?", reply_markup=KEYBOARD)

    assert message.chat.type == "private"
    assert message.reply_markup == KEYBOARD
    call = api.sent(42)[-1]
    assert call.method == "sendMessage"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Yes", "callback_data": "vote:yes"}]]
    }
    assert api.messages[(42, message.message_id)]["text"] == "Vote?"


@pytest.mark.asyncio
async def test_edits_update_registry_and_callbacks_see_current_message() -> None:
    api = FakeBotApi()
    async with recording_bot(api) as bot:
        sent = await bot.send_message(42, "Vote?", reply_markup=KEYBOARD)
        await bot.edit_message_text("Voted", chat_id=42, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_text("Voted", chat_id=42, message_id=sent.message_id)

    stored = api.messages[(42, sent.message_id)]
    assert stored["text"] == "Voted"
    assert "reply_markup" not in stored  # an edit without reply_markup drops the keyboard
    assert api.last_sent(42)["text"] == "Voted"
    update = api.make_callback(42, "vote:yes", sent.to_dict())
    assert update["callback_query"]["message"]["text"] == "Voted"


@pytest.mark.asyncio
async def test_process_update_through_application() -> None:
    api = FakeBotApi()

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(f"hi {context.args}")

    app = recording_application_builder(api).build()
    app.add_handler(CommandHandler("start", start))
    async with app:
        update = api.make_message(7, "/start abc", language_code="en")
        await app.process_update(Update.de_json(update, app.bot))

    assert api.last_sent(7)["text"] == "hi ['abc']"


@pytest.mark.asyncio
async def test_http_stand_in_sends_message_and_document() -> None:
    api = FakeBotApi()
    async with BotApiStandIn(api) as server:
        bot = Bot(api.token, base_url=server.base_url, base_file_url=server.base_file_url)
        async with bot:
            message = await bot.send_message(-5, "hello group", reply_markup=KEYBOARD)
            doc = await bot.send_document(5, b"report body", filename="report.txt", caption="R")
            file = await bot.get_file(doc.document.file_id)
            downloaded = await file.download_as_bytearray()

        # Plain JSON bodies with a JSON-string reply_markup are accepted too.
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{server.base_url}{api.token}/SENDMESSAGE",
                json={
                    "chat_id": "5",
                    "text": "123",
                    "reply_markup": json.dumps(KEYBOARD.to_dict()),
                },
            )

    assert message.chat.type == "group" and message.reply_markup == KEYBOARD
    assert doc.document.file_name == "report.txt" and doc.caption == "R"
    assert api.sent(5, "sendDocument")[-1].files["document"] == ("report.txt", b"report body")
    assert bytes(downloaded) == b"report body"
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["text"] == "123" and result["reply_markup"] == KEYBOARD.to_dict()
    assert api.calls[-1].params["chat_id"] == 5


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_global_rate_limit_returns_429() -> None:
    api = FakeBotApi(global_rate_limit=2)
    async with recording_bot(api) as bot:
        await bot.send_message(1, "a")
        await bot.send_message(2, "b")
        with pytest.raises(RetryAfter) as excinfo:
            await bot.send_message(3, "c")

    assert _seconds(excinfo.value.retry_after) >= 1
    status, body = await api.handle("sendMessage", {"chat_id": 4, "text": "d"})
    assert status == 429
    assert body["error_code"] == 429 and body["parameters"]["retry_after"] >= 1
    assert (
        body["description"] == f"Too Many Requests: retry after {body['parameters']['retry_after']}"
    )
    assert len(api.sent()) == 2 and len(api.sent(include_failed=True)) == 4


@pytest.mark.asyncio
async def test_blocked_chat_is_forbidden() -> None:
    api = FakeBotApi(blocked_chat_ids={99})
    async with recording_bot(api) as bot:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(99, "hi")
        api.missing_chat_ids.add(100)
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_message(100, "hi")
    assert api.calls[-2].status == 403


@pytest.mark.asyncio
async def test_get_updates_long_poll_returns_pushed_command() -> None:
    api = FakeBotApi()
    async with recording_bot(api) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.05)
        update_id = api.push_update(api.make_message(7, "/start@cluster_test_bot go"))
        updates = await asyncio.wait_for(poll, 1)

        assert [u.update_id for u in updates] == [update_id]
        entity = updates[0].message.entities[0]
        assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 23)
        assert CommandHandler("start", lambda u, c: None).check_update(updates[0])

        # Acknowledging via offset empties the queue.
        assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()


@pytest.mark.asyncio
async def test_polling_application_over_http() -> None:
    api = FakeBotApi()
    replied = asyncio.Event()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("pong")
        replied.set()

    async with BotApiStandIn(api) as server:
        app = server.application_builder().build()
        app.add_handler(CommandHandler("ping", echo))
        async with app:
            await app.updater.start_polling(timeout=5)
            await app.start()
            api.push_update(api.make_message(11, "/ping"))
            await asyncio.wait_for(replied.wait(), 2)
            await app.updater.stop()
            await app.stop()

    assert api.last_sent(11)["text"] == "pong"
    assert not api.pending_updates  # the final getUpdates acknowledged it
