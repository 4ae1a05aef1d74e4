"""Webhook mode as deployed (Procfile `web:`): the real `python -m bot run` process registers its
webhook with the secret, refuses requests without it, and answers updates that carry it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx

from tests.botapi import BotApiStandIn, FakeBotApi
from tests.conftest import BOT_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_checks_the_secret(tmp_path):
    api = FakeBotApi(token=BOT_TOKEN)
    port = free_port()
    async with BotApiStandIn(api) as stand_in:
        env = {
            **{k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"},
            "BOT_TOKEN": BOT_TOKEN,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hook.db'}",
            "TELEGRAM_BASE_URL": stand_in.base_url,
            "TELEGRAM_BASE_FILE_URL": stand_in.base_file_url,
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
            "WEBHOOK_SECRET": "s3cret-Token_1",
            "PORT": str(port),
            "PYTHONPATH": str(ROOT),
        }
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/telegram/hook"
            update = api.make_message(4242, "/start")
            async with httpx.AsyncClient() as client:
                for _ in range(100):
                    if api.webhook:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)
                refused = await client.post(url, json=update)
                accepted = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"})
            for _ in range(100):
                if api.sent(4242):
                    break
                await asyncio.sleep(0.05)
        finally:
            bot.terminate()
            await bot.wait()
    assert api.webhook["url"] == f"http://127.0.0.1:{port}/telegram/hook"
    assert api.webhook.get("secret_token") == "s3cret-Token_1"
    assert refused.status_code == 403 and accepted.status_code == 200
    assert "invite link" in api.sent(4242)[0].params["text"]
