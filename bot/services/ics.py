"""Calendar files (RFC 5545) for meetings, so an invitee can put one in their phone's calendar.

One event per file, times in UTC (no VTIMEZONE needed). The UID stays the same for the life of a
meeting and SEQUENCE is its revision, so a calendar replaces the old entry on a reschedule and
removes it on METHOD:CANCEL instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models import Meeting
from models.base import as_utc, utcnow

PRODID = "-//Cluster Bot//Meetings//EN"
# Content lines are at most 75 octets; continuation lines start with one space.
MAX_OCTETS = 75
# Where replies would go if a calendar tried to send one; .invalid never resolves, and every
# attendee carries RSVP=FALSE, because people answer with the buttons in Telegram.
ORGANIZER_URI = "mailto:noreply@cluster-bot.invalid"
PARTSTAT = {"yes": "ACCEPTED", "no": "DECLINED", "maybe": "TENTATIVE"}


@dataclass(frozen=True)
class Attendee:
    name: str
    uri: str
    response: str | None = None


def escape_text(value: str) -> str:
    """TEXT values: backslash, semicolon and comma are escaped, line breaks become \\n."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\n", "\\n")


def param_value(value: str) -> str:
    """A parameter value (such as CN): quoted when it holds : ; or , and never a DQUOTE."""
    value = "".join(char for char in value if char >= " " and char != '"')
    return f'"{value}"' if any(char in value for char in ":;,") else value


def fold(line: str) -> str:
    """Split a content line into pieces of at most 75 octets, never inside a UTF-8 sequence."""
    pieces: list[str] = []
    current, size = "", 0
    for char in line:
        octets = len(char.encode())
        limit = MAX_OCTETS if not pieces else MAX_OCTETS - 1
        if size + octets > limit:
            pieces.append(current)
            current, size = char, octets
        else:
            current += char
            size += octets
    pieces.append(current)
    return "\r\n ".join(pieces)


def utc_stamp(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def meeting_uid(meeting: Meeting) -> str:
    # The creation time keeps UIDs apart between two installations that both have meeting 1.
    return f"meeting-{meeting.id}-{utc_stamp(meeting.created_at)}@cluster-bot"


def meeting_calendar(
    meeting: Meeting,
    *,
    organizer: str,
    cancelled: bool | None = None,
    attendee: Attendee | None = None,
    now: datetime | None = None,
) -> bytes:
    """The meeting as an iCalendar object: METHOD:REQUEST, or METHOD:CANCEL once cancelled."""
    cancelled = meeting.status == "cancelled" if cancelled is None else cancelled
    starts = as_utc(meeting.starts_at)
    event = [
        f"UID:{meeting_uid(meeting)}",
        f"DTSTAMP:{utc_stamp(now or utcnow())}",
        f"DTSTART:{utc_stamp(starts)}",
        f"DTEND:{utc_stamp(starts + timedelta(minutes=meeting.duration_minutes))}",
        f"SEQUENCE:{meeting.revision}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        f"SUMMARY:{escape_text(meeting.title)}",
        f"ORGANIZER;CN={param_value(organizer)}:{ORGANIZER_URI}",
    ]
    if attendee is not None:
        status = PARTSTAT.get(attendee.response or "", "NEEDS-ACTION")
        event.append(f"ATTENDEE;CN={param_value(attendee.name)};PARTSTAT={status};RSVP=FALSE:{attendee.uri}")
    if meeting.venue:
        event.append(f"LOCATION:{escape_text(meeting.venue)}")
    if meeting.latitude is not None and meeting.longitude is not None:
        event.append(f"GEO:{meeting.latitude:.6f};{meeting.longitude:.6f}")
    if meeting.agenda:
        event.append(f"DESCRIPTION:{escape_text(meeting.agenda)}")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{'CANCEL' if cancelled else 'REQUEST'}",
        "BEGIN:VEVENT",
        *event,
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode()


def file_name(meeting: Meeting) -> str:
    return f"meeting-{meeting.id}.ics"
