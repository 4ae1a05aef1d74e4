"""/meeting: notice with RSVP buttons and an .ics file, live tally, reschedule and cancel."""

from __future__ import annotations

FLOW = "mtg"

HANDLERS: list = []
