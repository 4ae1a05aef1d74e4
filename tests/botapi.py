"""A fake Telegram Bot API for tests and benchmarks (no internet needed).

Three layers share one in-memory :class:`FakeBotApi`:

* :class:`FakeBotApi` keeps the state (sent messages, queued updates, rate limits) and records
  every call, so tests can assert on what the bot sent.
* :class:`RecordingRequest` is a python-telegram-bot transport that calls the fake in-process;
  it is the fastest way to drive ``Application.process_update`` in unit tests.
* :class:`BotApiStandIn` serves the same fake over real HTTP (tornado, on the running asyncio
  loop), for end-to-end tests with polling and for benchmarks::

      python -m tests.botapi --port 8081 --rate-limit 30

The fake follows Telegram's observable behaviour where bots commonly trip over it (429 with
``retry_after``, 403 for blocked users, "message is not modified", inline keyboards being
dropped by edits that omit ``reply_markup``, 64-byte ``callback_data``), and is lenient
elsewhere (unknown file ids, replies to unknown messages) so hand-built fixtures keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import html
import inspect
import itertools
import json
import logging
import math
import mimetypes
import random
import re
import signal
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.web
from telegram import Bot
from telegram._utils.defaultvalue import DEFAULT_NONE, DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import TimedOut
from telegram.ext import ApplicationBuilder
from telegram.request import BaseRequest, RequestData

__all__ = [
    "ApiError",
    "BotApiStandIn",
    "Call",
    "FakeBotApi",
    "RecordingRequest",
    "StoredFile",
    "recording_application_builder",
    "recording_bot",
]

_LOGGER = logging.getLogger(__name__)

JSONDict = dict[str, Any]
FileTuple = tuple[str, bytes]
# An override receives the decoded params and uploaded files and returns the "result" value (or
# raises ApiError); it may be sync or async.
MethodHandler = Callable[[JSONDict, dict[str, FileTuple]], Any | Awaitable[Any]]

# Canonical spelling of the methods we know, so recorded calls read like the Bot API docs even
# when a client used different casing.
_KNOWN_METHODS = """
getMe logOut close getUpdates setWebhook deleteWebhook getWebhookInfo setMyCommands
deleteMyCommands getMyCommands sendMessage sendPhoto sendDocument sendAudio sendVoice sendVideo
sendAnimation sendVideoNote sendSticker sendMediaGroup sendLocation sendVenue sendContact sendDice
sendPoll sendChatAction forwardMessage copyMessage editMessageText editMessageReplyMarkup
editMessageCaption editMessageMedia deleteMessage deleteMessages answerCallbackQuery
answerInlineQuery getFile getChat getChatMember setChatMenuButton getChatMenuButton
setMyDescription setMyShortDescription setMyName
""".split()
_CANONICAL = {name.lower(): name for name in _KNOWN_METHODS}

# Parameters whose values are plain strings. Everything else that arrives as a string (form
# encoding) is JSON-decoded, which turns "123" into 123, "true" into True and reply_markup /
# entities / scope into objects -- but a message text of "123" must stay a string.
_STRING_PARAMS = frozenset(
    """
    text caption parse_mode caption_parse_mode url photo document audio voice video animation
    video_note sticker thumbnail action callback_query_id inline_query_id inline_message_id
    language_code secret_token ip_address title address foursquare_id foursquare_type
    google_place_id google_place_type phone_number first_name last_name vcard emoji question
    explanation explanation_parse_mode description short_description name file_id
    custom_emoji_id query result_id next_offset switch_pm_text switch_pm_parameter payload
    provider_token currency start_parameter invite_link custom_title message_effect_id
    business_connection_id gift_id text_parse_mode data
    """.split()
)

# Methods that create a message in a chat; these are what the rate limits count.
_MESSAGE_METHODS_EXTRA = frozenset({"forwardmessage", "copymessage"})
# Methods refused with 403 for blocked chats.
_OUTGOING_PREFIXES = ("send", "edit", "forward", "copy")
# What last_sent() considers "the last thing the user saw from the bot".
_LAST_SENT_METHODS = frozenset({"sendmessage", "sendphoto", "senddocument"})

# Keys of a message that carry its content (copied by forwardMessage / copyMessage).
_CONTENT_KEYS = (
    "text", "entities", "caption", "caption_entities", "photo", "document", "audio", "voice",
    "video", "animation", "video_note", "sticker", "location", "venue", "contact", "dice",
)  # fmt: skip

_MEDIA_KINDS = (
    "photo",
    "document",
    "audio",
    "voice",
    "video",
    "animation",
    "video_note",
    "sticker",
)
# Directory and default extension Telegram uses in file_path for each kind of upload.
_FILE_LAYOUT = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "audio": ("music", ".mp3"),
    "voice": ("voice", ".oga"),
    "video": ("videos", ".mp4"),
    "animation": ("animations", ".mp4"),
    "video_note": ("video_notes", ".mp4"),
    "sticker": ("stickers", ".webp"),
}
# Fields PTB requires on the media objects (it raises on de_json without them).
_MEDIA_EXTRAS: dict[str, JSONDict] = {
    "audio": {"duration": 0},
    "voice": {"duration": 0},
    "video": {"width": 640, "height": 360, "duration": 0},
    "animation": {"width": 320, "height": 240, "duration": 0},
    "video_note": {"length": 240, "duration": 0},
    "sticker": {
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    },
}

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?")
_HTML_TAG_RE = re.compile(r"<[^>]*>")


class ApiError(Exception):
    """A Bot API error response. Raise it from :meth:`FakeBotApi.on` overrides as well."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class Call:
    """One Bot API request as the fake saw it (params JSON-decoded, files read into memory)."""

    method: str
    params: JSONDict
    files: dict[str, FileTuple] = field(default_factory=dict)
    status: int = 200
    time: float = field(default_factory=time.monotonic)
    response: JSONDict | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return (self.response or {}).get("result")


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None


class _SlidingWindow:
    """Accepted events within a trailing window.

    The window is one second, widened for rates below 1/s so that at least one event fits
    (a 0.5/s limit means one message per two seconds rather than "never").
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be positive, got {rate}")
        self.window = max(1.0, 1.0 / rate)
        self.capacity = max(1, int(rate * self.window + 1e-9))
        self._events: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        """``None`` if another event fits now, else whole seconds until one will."""
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) < self.capacity:
            return None
        return max(1, math.ceil(self._events[0] + self.window - now))

    def add(self, now: float) -> None:
        self._events.append(now)


def _chat_key(value: Any) -> int | str:
    """Chat ids arrive as ints, numeric strings or '@channelusername'."""
    if isinstance(value, bool):  # bool is an int subclass; never a valid chat id
        return str(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


def decode_params(params: Mapping[str, Any]) -> JSONDict:
    """Turn form-encoded (all-string) or JSON params into the typed values Telegram would see."""
    decoded: JSONDict = {}
    for key, value in params.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and key not in _STRING_PARAMS:
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        decoded[key] = value
    if "chat_id" in decoded:
        decoded["chat_id"] = _chat_key(decoded["chat_id"])
    return decoded


def _utf16_len(text: str) -> int:
    # Telegram measures entity offsets/lengths in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSONDict]:
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: m.start()]),
            "length": _utf16_len(m.group()),
        }
        for m in _COMMAND_RE.finditer(text)
    ]


def _visible_length(text: str, parse_mode: Any) -> int:
    # Telegram's limits apply to the text after markup is parsed; approximating for HTML is
    # enough to catch "message is too long" without false positives from tags.
    if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
        return len(html.unescape(_HTML_TAG_RE.sub("", text)))
    return len(text)


def _as_file_tuple(value: Any) -> FileTuple:
    """Normalise an upload to (filename, bytes); accepts PTB field tuples and file handles."""
    if isinstance(value, (bytes, bytearray)):
        return "file", bytes(value)
    filename, content = value[0], value[1]
    if hasattr(content, "read"):
        content = content.read()
    if isinstance(content, str):
        content = content.encode()
    return str(filename or "file"), bytes(content)


class FakeBotApi:
    """In-memory Telegram Bot API.

    State that tests usually look at:

    * ``calls`` -- every request in completion order (see :class:`Call`);
    * ``messages`` -- every message the bot sent, keyed ``(chat_id, message_id)``, reflecting
      later edits and dropping deleted ones;
    * ``blocked_chat_ids`` / ``missing_chat_ids`` -- mutable, so a test can block a user midway.
    """

    def __init__(
        self,
        *,
        token: str = "123:TEST",
        bot_username: str = "cluster_test_bot",
        bot_first_name: str = "Cluster Test Bot",
        global_rate_limit: float | None = None,
        per_chat_rate_limit: float | None = None,
        blocked_chat_ids: Iterable[int] | None = None,
        missing_chat_ids: Iterable[int] | None = None,
        not_modified_errors: bool = True,
        history_limit: int | None = None,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.bot_user: JSONDict = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.global_rate_limit = global_rate_limit
        self.per_chat_rate_limit = per_chat_rate_limit
        # Keep the caller's set object so that mutating it later still takes effect.
        self.blocked_chat_ids: set[int | str] = _as_set(blocked_chat_ids)
        self.missing_chat_ids: set[int | str] = _as_set(missing_chat_ids)
        self.not_modified_errors = not_modified_errors
        # Bounds memory for long benchmark runs: older calls/messages are forgotten.
        self.history_limit = history_limit

        self.calls: list[Call] = []
        self.stats: Counter[tuple[str, int]] = Counter()
        self.messages: dict[tuple[int | str, int], JSONDict] = {}
        self.user_messages: dict[tuple[int | str, int], JSONDict] = {}
        self.users: dict[int, JSONDict] = {}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.webhook: JSONDict | None = None

        self._files_by_path: dict[str, StoredFile] = {}
        self._deleted: set[tuple[int | str, int]] = set()
        # Private chats share one message_id sequence between user and bot, as on Telegram.
        self._message_ids: dict[int | str, int] = {}
        self._update_ids = itertools.count(1)
        self._counter = itertools.count(1)
        self._updates: list[JSONDict] = []
        self._poll_waiters: set[asyncio.Future[str]] = set()
        self._global_window = _SlidingWindow(global_rate_limit) if global_rate_limit else None
        self._chat_windows: dict[int | str, _SlidingWindow] = {}
        self._overrides: dict[str, MethodHandler] = {}
        self._handlers: dict[str, Callable[[JSONDict, dict[str, FileTuple]], Any]] = {
            "getme": lambda p, f: dict(self.bot_user),
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getmycommands": self._get_my_commands,
            "sendmessage": self._send_message,
            "sendmediagroup": self._send_media_group,
            "sendlocation": self._send_location,
            "sendvenue": self._send_venue,
            "sendcontact": self._send_contact,
            "senddice": self._send_dice,
            "sendchataction": self._send_chat_action,
            "forwardmessage": self._forward_message,
            "copymessage": self._copy_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
        }
        for kind in _MEDIA_KINDS:
            self._handlers["send" + kind.replace("_", "")] = self._media_sender(kind)

    # ------------------------------------------------------------------ public API

    def on(self, method: str, handler: MethodHandler | None) -> None:
        """Replace a method's behaviour (``None`` restores the default).

        The handler gets ``(params, files)`` and returns the ``result`` value or raises
        :class:`ApiError`. Chat checks and rate limits still apply before it runs.
        """
        if handler is None:
            self._overrides.pop(method.lower(), None)
        else:
            self._overrides[method.lower()] = handler

    async def handle(
        self, method: str, params: Mapping[str, Any] | None, files: Mapping[str, Any] | None = None
    ) -> tuple[int, JSONDict]:
        """Execute one Bot API call; returns ``(http_status, json_body)``."""
        started = time.monotonic()
        lname = method.lower()
        name = _CANONICAL.get(lname, method)
        decoded = decode_params(copy.deepcopy(dict(params or {})))
        uploads = {key: _as_file_tuple(value) for key, value in (files or {}).items()}
        try:
            result = await self._dispatch(lname, decoded, uploads, started)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        else:
            status, body = 200, {"ok": True, "result": result}
        self._record(Call(name, decoded, uploads, status, started, body))
        return status, body

    def sent(
        self,
        chat_id: int | str | None = None,
        method: str | None = None,
        *,
        include_failed: bool = False,
    ) -> list[Call]:
        """Message-creating calls (send* except sendChatAction, forward/copy), or calls of
        ``method`` when given; only successful ones unless ``include_failed``."""
        wanted = method.lower() if method else None
        chat = _chat_key(chat_id) if chat_id is not None else None
        found = []
        for call in self.calls:
            lname = call.method.lower()
            if wanted is not None and lname != wanted:
                continue
            if wanted is None and not _is_message_method(lname):
                continue
            if chat is not None and call.params.get("chat_id") != chat:
                continue
            if call.ok or include_failed:
                found.append(call)
        return found

    def last_sent(self, chat_id: int | str) -> JSONDict | None:
        """Params of the last successful sendMessage/sendPhoto/sendDocument/edit* in a chat."""
        chat = _chat_key(chat_id)
        for call in reversed(self.calls):
            lname = call.method.lower()
            if (
                call.ok
                and (lname in _LAST_SENT_METHODS or lname.startswith("edit"))
                and call.params.get("chat_id") == chat
            ):
                return call.params
        return None

    def clear(self) -> None:
        """Forget recorded calls (messages, updates and files are kept)."""
        self.calls.clear()

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for getUpdates under a fresh update_id, which is returned."""
        queued = copy.deepcopy(dict(update))
        queued["update_id"] = next(self._update_ids)
        self._updates.append(queued)
        self._wake_pollers("update")
        return queued["update_id"]

    @property
    def pending_updates(self) -> list[JSONDict]:
        return list(self._updates)

    def abort_long_polls(self) -> None:
        """Make waiting getUpdates calls return an empty list now (used on server shutdown)."""
        self._wake_pollers("abort")

    def make_message(
        self,
        user_id: int,
        text: str | None,
        *,
        first_name: str = "Test",
        language_code: str | None = None,
        contact: JSONDict | None = None,
        location: JSONDict | tuple[float, float] | None = None,
        photo: bytes | str | None = None,
    ) -> JSONDict:
        """An Update with a private message from ``user_id``.

        ``photo`` is either uploaded bytes or a file_id; with a photo, ``text`` becomes the
        caption. Commands get ``bot_command`` entities so CommandHandler matches them.
        """
        user = self._remember_user(user_id, first_name, language_code)
        chat = {"id": user_id, "type": "private", "first_name": first_name}
        message: JSONDict = {
            "message_id": self._next_message_id(user_id),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        text_key, entities_key = ("text", "entities")
        if photo is not None:
            stored = (
                self._register_file(photo, None, "photo")
                if isinstance(photo, (bytes, bytearray))
                else self._file_by_id(photo, "photo")
            )
            message["photo"] = self._media_object("photo", stored)
            text_key, entities_key = ("caption", "caption_entities")
        if text is not None:
            message[text_key] = text
            if entities := _command_entities(text):
                message[entities_key] = entities
        if contact is not None:
            message["contact"] = dict(contact)
        if location is not None:
            if not isinstance(location, Mapping):
                location = {"latitude": location[0], "longitude": location[1]}
            message["location"] = {
                "latitude": float(location["latitude"]),
                "longitude": float(location["longitude"]),
            }
        self.user_messages[(user_id, message["message_id"])] = message
        return {"update_id": next(self._update_ids), "message": copy.deepcopy(message)}

    def make_contact_message(
        self,
        user_id: int,
        phone: str,
        contact_user_id: int | None,
        *,
        first_name: str = "Test",
        language_code: str | None = None,
    ) -> JSONDict:
        """An Update where ``user_id`` shares a contact (their own if ids match)."""
        contact: JSONDict = {"phone_number": phone, "first_name": first_name}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self.make_message(
            user_id, None, first_name=first_name, language_code=language_code, contact=contact
        )

    def make_callback(
        self,
        user_id: int,
        data: str,
        message: Mapping[str, Any],
        *,
        language_code: str | None = None,
    ) -> JSONDict:
        """An Update for a press on an inline button of ``message`` (a message the bot sent).

        Telegram attaches the message as it is now, so the registry's edited version wins over
        a stale copy the test may hold.
        """
        key = (_chat_key(message["chat"]["id"]), message["message_id"])
        current = self.messages.get(key, message)
        known = self.users.get(user_id)
        user = self._remember_user(
            user_id,
            known["first_name"] if known else "Test",
            language_code or (known or {}).get("language_code"),
        )
        query = {
            "id": str(next(self._counter)),
            "from": user,
            "message": copy.deepcopy(dict(current)),
            "chat_instance": str(abs(hash(key[0])) % 10**12),
            "data": data,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    def file_bytes(self, file_path: str) -> bytes:
        """Content served for a file path from getFile (placeholder bytes if unknown)."""
        stored = self._files_by_path.get(file_path)
        return stored.data if stored else f"fake file contents: {file_path}".encode()

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(
        self, lname: str, p: JSONDict, files: dict[str, FileTuple], now: float
    ) -> Any:
        outgoing = lname.startswith(_OUTGOING_PREFIXES) and not p.get("inline_message_id")
        if "chat_id" in p:
            self._check_chat(p["chat_id"], outgoing=outgoing)
        counted = _is_message_method(lname)
        if counted:
            self._check_rate(p.get("chat_id"), now)

        handler = self._overrides.get(lname) or self._handlers.get(lname)
        if handler is None:
            # Unknown send* methods still have to return a Message or PTB fails to parse.
            handler = self._send_generic if lname.startswith("send") else (lambda p, f: True)
        result = handler(p, files)
        if inspect.isawaitable(result):
            result = await result

        if counted:
            self._note_sent(p.get("chat_id"), now)
        return result

    def _check_chat(self, chat_id: int | str, *, outgoing: bool) -> None:
        if chat_id in self.missing_chat_ids:
            raise ApiError(400, "Bad Request: chat not found")
        if outgoing and chat_id in self.blocked_chat_ids:
            if isinstance(chat_id, int) and chat_id < 0:
                raise ApiError(403, "Forbidden: bot was kicked from the group chat")
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _check_rate(self, chat_id: int | str | None, now: float) -> None:
        waits = []
        if self._global_window is not None:
            waits.append(self._global_window.retry_after(now))
        if self.per_chat_rate_limit and chat_id is not None:
            window = self._chat_windows.get(chat_id)
            if window is not None:
                waits.append(window.retry_after(now))
        retry = max((w for w in waits if w is not None), default=None)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    def _note_sent(self, chat_id: int | str | None, now: float) -> None:
        if self._global_window is not None:
            self._global_window.add(now)
        if self.per_chat_rate_limit and chat_id is not None:
            window = self._chat_windows.get(chat_id)
            if window is None:
                window = self._chat_windows[chat_id] = _SlidingWindow(self.per_chat_rate_limit)
            window.add(now)

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self.stats[(call.method, call.status)] += 1
        if self.history_limit and len(self.calls) > self.history_limit:
            # Trim in chunks so the cost is amortised over many calls.
            del self.calls[: len(self.calls) - self.history_limit // 2]

    # ------------------------------------------------------------------ updates & webhook

    async def _get_updates(self, p: JSONDict, files: dict[str, FileTuple]) -> list[JSONDict]:
        if self.webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.get("offset")
        if isinstance(offset, int) and offset < 0:
            self._updates = self._updates[offset:]
        elif isinstance(offset, int):
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        timeout = float(p.get("timeout") or 0)

        # Telegram allows one long poll per bot: a newer request terminates the older one.
        self._wake_pollers("conflict")
        deadline = time.monotonic() + timeout
        while True:
            if self._updates:
                return copy.deepcopy(self._updates[:limit])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._poll_waiters.add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                self._poll_waiters.discard(waiter)
            reason = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if reason == "conflict":
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if reason == "abort":
                return []

    def _wake_pollers(self, reason: str) -> None:
        for waiter in list(self._poll_waiters):
            # Thread-safe so a benchmark driver thread may push updates too.
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter, reason)

    def _set_webhook(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        if not p.get("url"):
            return self._delete_webhook(p, files)
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {
            key: p[key]
            for key in ("url", "max_connections", "allowed_updates", "secret_token")
            if key in p
        }
        return True

    def _delete_webhook(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        return True

    def _get_webhook_info(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        info: JSONDict = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook.get("max_connections", 40)
            if "allowed_updates" in self.webhook:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    # ------------------------------------------------------------------ commands

    @staticmethod
    def _commands_key(p: JSONDict) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")

    def _set_my_commands(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        self.commands[self._commands_key(p)] = list(p.get("commands") or [])
        return True

    def _delete_my_commands(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    def _get_my_commands(self, p: JSONDict, files: dict[str, FileTuple]) -> list[JSONDict]:
        return copy.deepcopy(self.commands.get(self._commands_key(p), []))

    # ------------------------------------------------------------------ sending

    def _send_message(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        text = p.get("text")
        if text is None or str(text) == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        if _visible_length(text, p.get("parse_mode")) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        message = self._new_message(p)
        message["text"] = text
        if p.get("entities"):
            message["entities"] = p["entities"]
        return self._store(message, p["chat_id"])

    def _media_sender(self, kind: str) -> Callable[[JSONDict, dict[str, FileTuple]], JSONDict]:
        def send(p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
            stored = self._resolve_input_file(p.get(kind), files, kind, default_part=kind)
            if stored is None:
                raise ApiError(400, f"Bad Request: there is no {kind} in the request")
            self._check_caption(p)
            message = self._new_message(p)
            message[kind] = self._media_object(kind, stored)
            self._apply_caption(message, p)
            return self._store(message, p["chat_id"])

        return send

    def _send_media_group(self, p: JSONDict, files: dict[str, FileTuple]) -> list[JSONDict]:
        media = p.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of messages in the album")
        self._require_chat(p)
        group_id = str(next(self._counter))
        sent = []
        for item in media:
            kind = item.get("type", "photo")
            if kind not in _MEDIA_KINDS:
                raise ApiError(400, f"Bad Request: unsupported media type {kind!r} in the album")
            stored = self._resolve_input_file(item.get("media"), files, kind)
            if stored is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            self._check_caption(item)
            message = self._new_message(p)
            message["media_group_id"] = group_id
            message[kind] = self._media_object(kind, stored)
            self._apply_caption(message, item)
            sent.append(self._store(message, p["chat_id"]))
        return sent

    def _send_chat_action(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        self._require_chat(p)
        return True

    def _send_location(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        message = self._new_message(p)
        message["location"] = self._location(p)
        return self._store(message, p["chat_id"])

    def _send_venue(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        message = self._new_message(p)
        location = self._location(p)
        message["location"] = location
        message["venue"] = {
            "location": location,
            "title": str(p.get("title", "")),
            "address": str(p.get("address", "")),
        }
        return self._store(message, p["chat_id"])

    def _send_contact(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        message = self._new_message(p)
        message["contact"] = {
            key: p[key] for key in ("phone_number", "first_name", "last_name", "vcard") if key in p
        }
        return self._store(message, p["chat_id"])

    def _send_dice(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        emoji = str(p.get("emoji") or "\U0001f3b2")
        top = {"\U0001f3b0": 64, "\U0001f3c0": 5, "\u26bd": 5}.get(emoji, 6)
        message = self._new_message(p)
        message["dice"] = {"emoji": emoji, "value": random.randint(1, top)}
        return self._store(message, p["chat_id"])

    def _send_generic(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        message = self._new_message(p)
        for key in ("text", "caption"):
            if p.get(key):
                message[key] = str(p[key])
        return self._store(message, p["chat_id"])

    def _forward_message(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        source = self._lookup(p.get("from_chat_id"), p.get("message_id"))
        message = self._new_message(p)
        if source:
            message.update({k: copy.deepcopy(source[k]) for k in _CONTENT_KEYS if k in source})
            message["forward_origin"] = {
                "type": "user",
                "date": source["date"],
                "sender_user": source["from"],
            }
        else:
            message["forward_origin"] = {
                "type": "hidden_user",
                "date": int(time.time()),
                "sender_user_name": "Unknown",
            }
        return self._store(message, p["chat_id"])

    def _copy_message(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        source = self._lookup(p.get("from_chat_id"), p.get("message_id"))
        if source is None:
            raise ApiError(400, "Bad Request: message to copy not found")
        message = self._new_message(p)
        message.update({k: copy.deepcopy(source[k]) for k in _CONTENT_KEYS if k in source})
        if "caption" in p and "text" not in message:
            self._apply_caption(message, p)
        return {"message_id": self._store(message, p["chat_id"])["message_id"]}

    # ------------------------------------------------------------------ editing & deleting

    def _edit_target(self, p: JSONDict) -> tuple[tuple[int | str, int], JSONDict] | None:
        """The stored message an edit refers to; ``None`` for inline messages."""
        if p.get("inline_message_id"):
            return None
        key = (self._require_chat(p), p.get("message_id"))
        message = self.messages.get(key)  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return key, message  # type: ignore[return-value]

    def _finish_edit(
        self, key: tuple[int | str, int], message: JSONDict, changes: JSONDict
    ) -> JSONDict:
        # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
        if all(message.get(k) == v for k, v in changes.items() if v is not None) and all(
            k not in message for k, v in changes.items() if v is None
        ):
            if self.not_modified_errors:
                raise ApiError(400, _NOT_MODIFIED)
        for k, v in changes.items():
            if v is None:
                message.pop(k, None)
            else:
                message[k] = v
        message["edit_date"] = int(time.time())
        self.messages[key] = message
        return copy.deepcopy(message)

    def _edit_message_text(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict | bool:
        text = p.get("text")
        if text is None or str(text) == "":
            raise ApiError(400, "Bad Request: message text is empty")
        if _visible_length(str(text), p.get("parse_mode")) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        target = self._edit_target(p)
        markup = self._inline_markup(p)
        if target is None:
            return True
        key, message = target
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        return self._finish_edit(
            key,
            message,
            {"text": str(text), "entities": p.get("entities") or None, "reply_markup": markup},
        )

    def _edit_message_caption(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict | bool:
        self._check_caption(p)
        target = self._edit_target(p)
        markup = self._inline_markup(p)
        if target is None:
            return True
        key, message = target
        if "text" in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = str(p["caption"]) if p.get("caption") else None
        return self._finish_edit(
            key,
            message,
            {
                "caption": caption,
                "caption_entities": p.get("caption_entities") or None,
                "reply_markup": markup,
            },
        )

    def _edit_message_reply_markup(
        self, p: JSONDict, files: dict[str, FileTuple]
    ) -> JSONDict | bool:
        target = self._edit_target(p)
        markup = self._inline_markup(p)
        if target is None:
            return True
        key, message = target
        return self._finish_edit(key, message, {"reply_markup": markup})

    def _delete_message(self, p: JSONDict, files: dict[str, FileTuple]) -> bool:
        key = (self._require_chat(p), p.get("message_id"))
        # Only refuse what we know is gone; hand-built fixtures reference ids we never saw.
        if key in self._deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.messages.pop(key, None)  # type: ignore[arg-type]
        self.user_messages.pop(key, None)  # type: ignore[arg-type]
        self._deleted.add(key)  # type: ignore[arg-type]
        return True

    # ------------------------------------------------------------------ files & chats

    def _get_file(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        file_id = p.get("file_id")
        if not file_id:
            raise ApiError(400, "Bad Request: file_id not specified")
        stored = self._file_by_id(str(file_id), "document")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _get_chat(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        chat_id = self._require_chat(p)
        chat: JSONDict = {
            **self._chat(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        if isinstance(chat_id, int) and chat_id in self.users:
            chat["first_name"] = self.users[chat_id]["first_name"]
        return chat

    def _get_chat_member(self, p: JSONDict, files: dict[str, FileTuple]) -> JSONDict:
        self._require_chat(p)
        user_id = int(p.get("user_id") or 0)
        if user_id == self.bot_id:
            return {"status": "member", "user": dict(self.bot_user)}
        user = self.users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "Test"}
        return {"status": "member", "user": dict(user)}

    # ------------------------------------------------------------------ helpers

    def _require_chat(self, p: JSONDict) -> int | str:
        chat_id = p.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        return chat_id

    @staticmethod
    def _chat(chat_id: int | str) -> JSONDict:
        if isinstance(chat_id, str):
            return {
                "id": -1000000000000 - abs(hash(chat_id)) % 10**9,
                "type": "channel",
                "username": chat_id.lstrip("@"),
            }
        return {"id": chat_id, "type": "private" if chat_id > 0 else "group"}

    def _next_message_id(self, chat_id: int | str) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _remember_user(self, user_id: int, first_name: str, language_code: str | None) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return dict(user)

    def _lookup(self, chat_id: Any, message_id: Any) -> JSONDict | None:
        if chat_id is None or message_id is None:
            return None
        key = (_chat_key(chat_id), int(message_id))
        return self.messages.get(key) or self.user_messages.get(key)

    def _new_message(self, p: JSONDict) -> JSONDict:
        chat_id = self._require_chat(p)
        message: JSONDict = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            # Messages carry the short User form; the can_* flags only come with getMe.
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
        }
        if p.get("message_thread_id") is not None:
            message["message_thread_id"] = p["message_thread_id"]
        reply_to = (p.get("reply_parameters") or {}).get("message_id") or p.get(
            "reply_to_message_id"
        )
        replied = self._lookup(chat_id, reply_to) if reply_to else None
        if replied:
            # Telegram never nests replies more than one level deep.
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        if (markup := self._inline_markup(p)) is not None:
            message["reply_markup"] = markup
        return message

    @staticmethod
    def _inline_markup(p: JSONDict) -> JSONDict | None:
        # Only inline keyboards are part of a Message; reply keyboards are accepted (and kept in
        # the recorded params) but PTB would fail to parse them as Message.reply_markup.
        markup = p.get("reply_markup")
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return None
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    @staticmethod
    def _check_caption(p: JSONDict) -> None:
        caption = p.get("caption")
        if caption and _visible_length(str(caption), p.get("parse_mode")) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")

    @staticmethod
    def _apply_caption(message: JSONDict, p: JSONDict) -> None:
        if p.get("caption"):
            message["caption"] = str(p["caption"])
            if p.get("caption_entities"):
                message["caption_entities"] = p["caption_entities"]

    @staticmethod
    def _location(p: JSONDict) -> JSONDict:
        try:
            location: JSONDict = {
                "latitude": float(p["latitude"]),
                "longitude": float(p["longitude"]),
            }
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: wrong latitude/longitude specified") from None
        if p.get("live_period"):
            location["live_period"] = p["live_period"]
        return location

    def _store(self, message: JSONDict, chat_id: int | str) -> JSONDict:
        # Keyed by the chat_id the bot used, which for channels may be an '@username'.
        self.messages[(chat_id, message["message_id"])] = message
        if self.history_limit and len(self.messages) > self.history_limit:
            for key in list(
                itertools.islice(self.messages, len(self.messages) - self.history_limit // 2)
            ):
                del self.messages[key]
        return copy.deepcopy(message)

    def _resolve_input_file(
        self, value: Any, files: dict[str, FileTuple], kind: str, default_part: str | None = None
    ) -> StoredFile | None:
        """Find the upload/file_id/URL a send* parameter refers to."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
            return self._register_file(upload[1], upload[0], kind) if upload else None
        if value is None:
            upload = files.get(default_part) if default_part else None
            return self._register_file(upload[1], upload[0], kind) if upload else None
        value = str(value)
        if value.startswith(("http://", "https://")):
            name = unquote(urlsplit(value).path.rsplit("/", 1)[-1]) or None
            return self._register_file(f"downloaded from {value}".encode(), name, kind)
        return self._file_by_id(value, kind)

    def _register_file(
        self, data: bytes, file_name: str | None, kind: str, file_id: str | None = None
    ) -> StoredFile:
        n = next(self._counter)
        directory, default_ext = _FILE_LAYOUT.get(kind, ("documents", ""))
        ext = ""
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[-1]
        mime_type = mimetypes.guess_type(file_name or "", strict=False)[0] if file_name else None
        stored = StoredFile(
            file_id=file_id or f"fake-{kind}-{n}",
            file_unique_id=f"fakeuniq{n}",
            file_path=f"{directory}/file_{n}{ext or default_ext}",
            data=bytes(data),
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _file_by_id(self, file_id: str, kind: str) -> StoredFile:
        # Unknown ids are accepted: tests often use made-up file_ids in fixtures.
        stored = self.files.get(file_id)
        if stored is None:
            stored = self._register_file(
                f"fake file {file_id}".encode(), None, kind, file_id=file_id
            )
        return stored

    @staticmethod
    def _media_object(kind: str, stored: StoredFile) -> Any:
        base: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if kind == "photo":
            return [{**base, "width": 320, "height": 320}]
        obj = {**base, **_MEDIA_EXTRAS.get(kind, {})}
        if kind in ("document", "audio", "video", "animation"):
            if stored.file_name:
                obj["file_name"] = stored.file_name
            if stored.mime_type:
                obj["mime_type"] = stored.mime_type
        return obj


def _as_set(values: Iterable[Any] | None) -> set[Any]:
    if values is None:
        return set()
    return values if isinstance(values, set) else set(values)


def _is_message_method(lname: str) -> bool:
    return (
        lname.startswith("send") and lname != "sendchataction"
    ) or lname in _MESSAGE_METHODS_EXTRA


def _resolve(waiter: asyncio.Future[str], reason: str) -> None:
    if not waiter.done():
        waiter.set_result(reason)


# ---------------------------------------------------------------------- PTB transport

_METHOD_PATH_RE = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z0-9_]+)/?$")
_FILE_PATH_RE = re.compile(r"/file/bot(?P<token>[^/]+)/(?P<path>.+)$")


def _unauthorized() -> JSONDict:
    return {"ok": False, "error_code": 401, "description": "Unauthorized"}


class RecordingRequest(BaseRequest):
    """PTB transport that answers from a :class:`FakeBotApi` in-process, without HTTP.

    Pass one to both ``request`` and ``get_updates_request`` (see :func:`recording_bot`):
    a Bot given only ``request`` would still poll the real Telegram through HTTPX.
    """

    def __init__(self, api: FakeBotApi, *, read_timeout: float | None = 5.0) -> None:
        self.api = api
        self._read_timeout = read_timeout

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        path = unquote(urlsplit(url).path)
        if file_match := _FILE_PATH_RE.search(path):
            if file_match["token"] != self.api.token:
                return 401, json.dumps(_unauthorized()).encode()
            return 200, self.api.file_bytes(file_match["path"])
        match = _METHOD_PATH_RE.search(path)
        if match is None:
            return 404, json.dumps(
                {"ok": False, "error_code": 404, "description": "Not Found"}
            ).encode()
        if match["token"] != self.api.token:
            return 401, json.dumps(_unauthorized()).encode()

        # A JSON round trip gives the fake exactly what would have crossed the wire and catches
        # values that real HTTP could not carry.
        params = json.loads(json.dumps(request_data.parameters)) if request_data else {}
        files = (
            dict(request_data.multipart_data)
            if request_data and request_data.contains_files
            else {}
        )

        timeout = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        call = self.api.handle(match["method"], params, files)
        if timeout is not None and timeout > 0:
            try:
                status, body = await asyncio.wait_for(call, timeout)
            except TimeoutError:
                raise TimedOut(
                    f"Fake Bot API did not answer {match['method']} within {timeout}s"
                ) from None
        else:
            status, body = await call
        return status, json.dumps(body).encode()


def recording_bot(api: FakeBotApi, **bot_kwargs: Any) -> Bot:
    """A PTB Bot wired to ``api`` in-process (use ``async with bot:`` to initialise it)."""
    return Bot(
        api.token,
        request=RecordingRequest(api),
        get_updates_request=RecordingRequest(api),
        **bot_kwargs,
    )


def recording_application_builder(api: FakeBotApi) -> ApplicationBuilder:
    """An ApplicationBuilder whose bot talks to ``api`` in-process; add handlers and build()."""
    return (
        ApplicationBuilder()
        .token(api.token)
        .request(RecordingRequest(api))
        .get_updates_request(RecordingRequest(api))
    )


# ---------------------------------------------------------------------- HTTP stand-in


def _request_params(
    request: tornado.httputil.HTTPServerRequest,
) -> tuple[JSONDict, dict[str, FileTuple]]:
    # Query string plus form/multipart body (tornado merges both into .arguments).
    params: JSONDict = {
        key: values[-1].decode("utf-8", "replace") for key, values in request.arguments.items()
    }
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("application/json") and request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            raise ApiError(400, "Bad Request: invalid JSON in request body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: request body must be a JSON object")
        params.update(body)
    files = {
        name: (parts[-1].filename, parts[-1].body) for name, parts in request.files.items() if parts
    }
    return params, files


class _JsonHandler(tornado.web.RequestHandler):
    def initialize(self, api: FakeBotApi) -> None:
        self.api = api

    def reply(self, status: int, body: Any) -> Awaitable[None]:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        return self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Clients expect Bot API shaped errors even for server bugs.
        self.reply(
            status_code, {"ok": False, "error_code": status_code, "description": self._reason}
        )


class _MethodHandler(_JsonHandler):
    _task: asyncio.Future[tuple[int, JSONDict]] | None = None
    _gone = False

    def initialize(self, api: FakeBotApi, inflight: set[asyncio.Task[Any]] | None = None) -> None:
        super().initialize(api)
        self.inflight = inflight if inflight is not None else set()

    async def get(self, token: str, method: str) -> None:
        # Registered so that shutdown can let aborted long polls answer before connections close.
        current = asyncio.current_task()
        if current is not None:
            self.inflight.add(current)
            current.add_done_callback(self.inflight.discard)
        if token != self.api.token:
            self.reply(401, _unauthorized())
            return
        try:
            params, files = _request_params(self.request)
        except ApiError as exc:
            self.reply(exc.code, exc.body())
            return
        # A task, so that a client hanging up on a long poll cancels it instead of leaving the
        # waiter around to be "terminated by other getUpdates request" later.
        self._task = asyncio.ensure_future(self.api.handle(method, params, files))
        try:
            status, body = await self._task
        except asyncio.CancelledError:
            if self._gone:
                return
            raise
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await self.reply(status, body)

    post = get

    def on_connection_close(self) -> None:
        self._gone = True
        if self._task is not None:
            self._task.cancel()


class _FileHandler(_JsonHandler):
    def get(self, token: str, path: str) -> None:
        if token != self.api.token:
            self.reply(401, _unauthorized())
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(self.api.file_bytes(unquote(path)))


class _ControlHandler(_JsonHandler):
    """Out-of-band hooks for benchmark drivers talking to a standalone server.

    POST /_fake/update      body: Update JSON (update_id is assigned)
    POST /_fake/message     body: {"user_id": 1, "text": "/start", "first_name"?, "language_code"?}
    POST /_fake/callback    body: {"user_id": 1, "data": "x", "chat_id": 1, "message_id": 2}
    GET  /_fake/stats       counts per method and status, queue length
    POST /_fake/clear       forget recorded calls
    """

    def get(self, action: str) -> None:
        if action != "stats":
            self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        per_method: dict[str, dict[str, int]] = {}
        for (method, status), count in self.api.stats.items():
            per_method.setdefault(method, {})[str(status)] = count
        self.reply(
            200,
            {
                "ok": True,
                "result": {
                    "calls": per_method,
                    "pending_updates": len(self.api.pending_updates),
                    "messages": len(self.api.messages),
                },
            },
        )

    def post(self, action: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            if action == "update":
                result: Any = self.api.push_update(body)
            elif action == "message":
                update = self.api.make_message(
                    int(body["user_id"]),
                    body.get("text"),
                    first_name=body.get("first_name", "Test"),
                    language_code=body.get("language_code"),
                )
                result = self.api.push_update(update)
            elif action == "callback":
                message = self.api.messages.get(
                    (_chat_key(body["chat_id"]), int(body["message_id"]))
                )
                if message is None:
                    raise ApiError(400, "Bad Request: message not found")
                result = self.api.push_update(
                    self.api.make_callback(int(body["user_id"]), body["data"], message)
                )
            elif action == "clear":
                self.api.clear()
                result = True
            else:
                raise ApiError(404, "Not Found")
        except ApiError as exc:
            self.reply(exc.code, exc.body())
        except (ValueError, KeyError, TypeError) as exc:
            self.reply(
                400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc!r}"}
            )
        else:
            self.reply(200, {"ok": True, "result": result})


class _NotFoundHandler(_JsonHandler):
    def prepare(self) -> None:
        self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})


class BotApiStandIn:
    """Serves a :class:`FakeBotApi` over HTTP on the running asyncio loop.

    ::

        async with BotApiStandIn(api) as server:
            app = server.application_builder().build()   # or Bot(api.token, base_url=...)
    """

    def __init__(
        self, api: FakeBotApi | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.api = api or FakeBotApi()
        self.host = host
        self.port = port
        self._server: tornado.httpserver.HTTPServer | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def application_builder(self) -> ApplicationBuilder:
        return (
            ApplicationBuilder()
            .token(self.api.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    async def start(self) -> BotApiStandIn:
        if self._server is not None:
            return self
        kwargs = {"api": self.api}
        app = tornado.web.Application(
            [
                (
                    r"/bot([^/]+)/([A-Za-z0-9_]+)/?",
                    _MethodHandler,
                    {**kwargs, "inflight": self._inflight},
                ),
                (r"/file/bot([^/]+)/(.+)", _FileHandler, kwargs),
                (r"/_fake/([a-z_]+)", _ControlHandler, kwargs),
                (r".*", _NotFoundHandler, kwargs),
            ],
            log_function=lambda handler: None,  # access logs would swamp benchmark output
        )
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        _LOGGER.debug("Fake Bot API listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        # Pending long polls would otherwise keep connections (and this coroutine) alive until
        # their timeout expires.
        self.api.abort_long_polls()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=1.0)
        await server.close_all_connections()

    async def __aenter__(self) -> BotApiStandIn:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


# ---------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Telegram Bot API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123:TEST")
    parser.add_argument("--bot-username", default="cluster_test_bot")
    parser.add_argument("--rate-limit", type=float, default=None, help="global messages per second")
    parser.add_argument(
        "--per-chat-rate-limit", type=float, default=None, help="messages per second per chat"
    )
    parser.add_argument(
        "--blocked", type=int, action="append", default=[], help="chat id that blocked the bot"
    )
    parser.add_argument(
        "--history-limit", type=int, default=100_000, help="recorded calls/messages kept"
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())

    async def serve() -> None:
        api = FakeBotApi(
            token=args.token,
            bot_username=args.bot_username,
            global_rate_limit=args.rate_limit,
            per_chat_rate_limit=args.per_chat_rate_limit,
            blocked_chat_ids=set(args.blocked),
            history_limit=args.history_limit,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with BotApiStandIn(api, host=args.host, port=args.port) as server:
            print(
                f"Fake Bot API: base_url={server.base_url} base_file_url={server.base_file_url} token={api.token}",
                flush=True,
            )
            await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
