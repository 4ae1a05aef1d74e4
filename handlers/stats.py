"""/stats and /export for the CDA: the dashboard, charts and files."""

from __future__ import annotations

FLOW = "sts"

HANDLERS: list = []
