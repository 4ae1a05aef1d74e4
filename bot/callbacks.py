"""Callback-data prefixes, in one place.

Buttons that answer a step of a persisted flow carry ``<flow>:<step>:<value>``; the handler compares
flow and step with the user's stored state, so a button from an old message is recognised as stale.
Other buttons carry the ids they act on, and the permission behind them is checked again on click.

| prefix | meaning |
| --- | --- |
| ``reg:<step>:<value>`` | registration: language, consent, a field's choice, summary actions |
| ``join:confirm:yes|no`` | a registered user joins one more cluster |
| ``prf:<step>:<value>`` | /profile: ``prf:view:<field>`` opens a field, ``prf:<field>:<value>`` answers it |
| ``fgt:confirm:yes|no`` | /forget confirmation |
| ``lng:pick:<code>`` | /language (valid at any time) |
| ``inv:<cluster_id>`` | /invite for one of the CDA's clusters |
| ``stk:<cluster_id>:<page>`` | /stakeholders page |
| ``svs:<launch_id>`` | start or resume a survey (invitation, reminder, /surveys) |
| ``sva:<response_id>:<question>:<action>`` | answer the current survey question (handlers/survey_render.py) |
| ``lch:<step>:<value>`` | /launch dialog |
| ``res:<launch_id>`` | /results for one survey round |
| ``bcs:<step>:<value>`` | /broadcast dialog; ``bcx`` / ``bcf`` its progress and failure-list buttons |
| ``act:<step>:<value>`` | /activity dialog |
| ``rpt:<step>:<value>`` | /report steps; ``rpv:<report>`` verify, ``rpp:<report>`` photos, ``rps:<activity>`` report now |
| ``mtg:<step>:<value>`` | /meeting dialog |
| ``mtr:<invite>:<y|n|m>`` | RSVP; ``mtc:<invite>`` calendar file; ``mtt:<meeting>`` tally refresh |
| ``sts:<step>:<value>`` | /stats and /export |
"""

from __future__ import annotations

from dataclasses import dataclass

REGISTRATION = "reg"
JOIN = "join"
PROFILE = "prf"
FORGET = "fgt"
LANGUAGE = "lng"
INVITE = "inv"
STAKEHOLDERS = "stk"


@dataclass(frozen=True)
class StepButton:
    flow: str
    step: str
    value: str

    @classmethod
    def parse(cls, data: str) -> StepButton | None:
        parts = data.split(":", 2)
        return cls(*parts) if len(parts) == 3 else None


def step_button(flow: str, step: str, value: str) -> str:
    data = f"{flow}:{step}:{value}"
    # Telegram refuses callback data over 64 bytes.
    assert len(data.encode()) <= 64, data
    return data
