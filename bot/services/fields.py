"""The profile fields a stakeholder gives, declared as data.

Registration asks them in this order and /profile edits them one at a time; both only render
what is declared here. Labels and prompts are msgids, translated when shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.i18n import N_
from models.stakeholder import ENTERPRISE_ROLES, Role, SizeClass

MAX_TEXT = 100

ROLE_LABELS: dict[str, str] = {
    Role.MSME_OWNER: N_("MSME owner"),
    Role.LARGE_ENTERPRISE: N_("Large enterprise"),
    Role.SUPPORT_INSTITUTION: N_("Support institution (training, testing, R&D)"),
    Role.BANK: N_("Bank or financial institution"),
    Role.LOCAL_GOVERNMENT: N_("Local government"),
    Role.ACADEMIA: N_("Business school or academia"),
    Role.SERVICE_PROVIDER: N_("Service provider"),
    Role.INDUSTRY_ASSOCIATION: N_("Industry association"),
    Role.OTHER: N_("Other"),
}

SIZE_LABELS: dict[str, str] = {
    SizeClass.MICRO: N_("Micro"),
    SizeClass.SMALL: N_("Small"),
    SizeClass.MEDIUM: N_("Medium"),
    SizeClass.LARGE: N_("Large"),
    SizeClass.NOT_ENTERPRISE: N_("Not an enterprise"),
}

ENTERPRISE_SIZES = (SizeClass.MICRO, SizeClass.SMALL, SizeClass.MEDIUM, SizeClass.LARGE)


def _runs_enterprise(answers: Mapping[str, Any]) -> bool:
    return answers.get("role") in ENTERPRISE_ROLES


def _always(_answers: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class ProfileField:
    key: str
    kind: Literal["text", "choice", "contact"]
    label: str
    prompt: str
    choices: tuple[tuple[str, str], ...] = ()
    applies: Callable[[Mapping[str, Any]], bool] = _always

    def choice_label(self, value: str | None) -> str | None:
        return dict(self.choices).get(value) if value is not None else None


FIELDS: tuple[ProfileField, ...] = (
    ProfileField("name", "text", N_("Name"), N_("What is your name?")),
    ProfileField(
        "role",
        "choice",
        N_("Role"),
        N_("Which of these describes you best?"),
        choices=tuple(ROLE_LABELS.items()),
    ),
    ProfileField(
        "enterprise",
        "text",
        N_("Enterprise"),
        N_("What is the name of your enterprise?"),
        applies=_runs_enterprise,
    ),
    ProfileField(
        "product",
        "text",
        N_("Product or sector"),
        N_("What do you make, or which sector do you work in? For example: brass utensils, dyeing, credit."),
    ),
    ProfileField(
        "size_class",
        "choice",
        N_("Size (Udyam)"),
        N_("What is the size of your enterprise as per Udyam registration?"),
        choices=tuple((size, SIZE_LABELS[size]) for size in ENTERPRISE_SIZES),
        applies=_runs_enterprise,
    ),
    ProfileField(
        "phone",
        "contact",
        N_("Phone"),
        N_("You may share your phone number so the CDA can call you. Press the button below, or Skip."),
    ),
)

FIELDS_BY_KEY = {field.key: field for field in FIELDS}


class InvalidAnswer(ValueError):
    """Carries a msgid that tells the user what to fix."""


def clean_text(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise InvalidAnswer(N_("Please write an answer; it cannot be empty."))
    if len(value) > MAX_TEXT:
        raise InvalidAnswer(N_("Please keep it under 100 characters."))
    return value


def clean_choice(field: ProfileField, value: str) -> str:
    if value not in dict(field.choices):
        raise InvalidAnswer(N_("Please choose one of the buttons."))
    return value


def applicable(answers: Mapping[str, Any]) -> list[ProfileField]:
    return [field for field in FIELDS if field.applies(answers)]


def next_missing(answers: Mapping[str, Any]) -> ProfileField | None:
    """The first field that applies and has no answer yet; None when the profile is complete."""
    for field in applicable(answers):
        if field.key not in answers:
            return field
    return None


def with_answer(answers: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A new answer set; fields that stop applying (a role without an enterprise) are dropped."""
    updated = {**answers, key: value}
    for field in FIELDS:
        if not field.applies(updated):
            updated.pop(field.key, None)
    return updated
