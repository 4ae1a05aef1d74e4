"""A scripted Telegram user: sends messages, presses buttons, shares contacts, and reads what
the bot answered. Drives the real Application through process_update."""

from __future__ import annotations

from typing import Any

from telegram import Update

from tests.botapi import Call, FakeBotApi


class ChatUser:
    def __init__(self, app, api: FakeBotApi, user_id: int, *, language_code: str | None = None, first_name: str = "Test"):
        self.app, self.api, self.user_id = app, api, user_id
        self.language_code, self.first_name = language_code, first_name
        self.replies: list[Call] = []

    async def _process(self, update: dict[str, Any]) -> list[Call]:
        before = len(self.api.calls)
        await self.app.process_update(Update.de_json(update, self.app.bot))
        self.replies = [call for call in self.api.calls[before:] if call.params.get("chat_id") == self.user_id or call.method == "answerCallbackQuery"]
        return self.replies

    async def send(self, text: str) -> list[Call]:
        return await self._process(
            self.api.make_message(self.user_id, text, first_name=self.first_name, language_code=self.language_code)
        )

    async def share_contact(self, phone: str, *, owner: int | None = None) -> list[Call]:
        return await self._process(
            self.api.make_contact_message(
                self.user_id, phone, self.user_id if owner is None else owner,
                first_name=self.first_name, language_code=self.language_code,
            )
        )

    def bot_messages(self) -> list[dict[str, Any]]:
        """Messages the bot sent to this chat, as they look now (after edits), oldest first."""
        return [message for (chat, _), message in self.api.messages.items() if chat == self.user_id]

    def find_button(self, label: str) -> tuple[dict[str, Any], str]:
        """The newest message with an inline button whose text is (or contains) label."""
        for message in reversed(self.bot_messages()):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label or label in button["text"]:
                        return message, button["callback_data"]
        raise AssertionError(f"No live button {label!r}; last message: {self.last_text()!r}")

    def buttons(self) -> list[str]:
        for message in reversed(self.bot_messages()):
            markup = (message.get("reply_markup") or {}).get("inline_keyboard")
            if markup:
                return [button["text"] for row in markup for button in row]
        return []

    async def click(self, label: str) -> list[Call]:
        message, data = self.find_button(label)
        return await self.press(data, message)

    async def press(self, data: str, message: dict[str, Any]) -> list[Call]:
        return await self._process(self.api.make_callback(self.user_id, data, message, language_code=self.language_code))

    def texts(self) -> list[str]:
        """Texts of the replies to the last action (sent and edited messages, captions)."""
        return [call.params.get("text") or call.params.get("caption") or "" for call in self.replies if call.method.startswith(("send", "edit"))]

    def last_text(self) -> str:
        sent = [message for message in self.bot_messages() if message.get("text") or message.get("caption")]
        return (sent[-1].get("text") or sent[-1].get("caption")) if sent else ""

    def alerts(self) -> list[str]:
        return [call.params.get("text", "") for call in self.replies if call.method == "answerCallbackQuery"]

    def reply_keyboard(self) -> list[str]:
        """Texts of the newest custom reply keyboard sent to this chat."""
        for call in reversed(self.api.calls):
            if call.params.get("chat_id") == self.user_id:
                markup = call.params.get("reply_markup") or {}
                if "keyboard" in markup:
                    return [b if isinstance(b, str) else b.get("text") for row in markup["keyboard"] for b in row]
                if markup.get("remove_keyboard"):
                    return []
        return []
