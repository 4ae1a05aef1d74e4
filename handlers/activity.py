"""/activity (CDA: create, edit, cancel, announce, import, hand over) and /activities (everyone)."""

from __future__ import annotations

FLOW = "act"

HANDLERS: list = []
