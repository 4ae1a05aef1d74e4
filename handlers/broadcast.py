"""/broadcast: compose, per-language versions, audience, schedule, confirm; live progress."""

from __future__ import annotations

FLOW = "bcs"

HANDLERS: list = []
