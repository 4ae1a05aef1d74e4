"""/report: a stakeholder reports progress on one of their activities, step by step."""

from __future__ import annotations

FLOW = "rpt"

HANDLERS: list = []
