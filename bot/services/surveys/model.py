"""The one internal model every survey source is turned into, stored as JSON with a version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Texts are per language: {"en": "...", "hi": "..."}.
Texts = dict[str, str]

QUESTION_TYPES = frozenset(
    {
        "select_one",
        "select_multiple",
        "text",
        "integer",
        "decimal",
        "range",
        "date",
        "note",
        "acknowledge",
        "image",
        "geopoint",
        # Ours: choose among the cluster's registered stakeholders; each pick is a linkage edge.
        "select_stakeholders",
    }
)
# Questions that show something and take no typed value.
DISPLAY_TYPES = frozenset({"note"})


@dataclass
class Choice:
    name: str
    label: Texts


@dataclass
class Question:
    name: str
    type: str
    label: Texts
    hint: Texts = field(default_factory=dict)
    required: bool = False
    required_message: Texts = field(default_factory=dict)
    relevant: str | None = None
    constraint: str | None = None
    constraint_message: Texts = field(default_factory=dict)
    default: str | None = None
    appearance: str | None = None
    choices: list[Choice] = field(default_factory=list)
    # range questions: start, end, step.
    start: float | None = None
    end: float | None = None
    step: float | None = None

    def choice(self, name: str) -> Choice | None:
        return next((choice for choice in self.choices if choice.name == name), None)


@dataclass
class SurveyDefinition:
    form_id: str
    title: Texts
    version: str
    default_language: str
    questions: list[Question]
    anonymous: bool = False
    description: Texts = field(default_factory=dict)

    def question(self, name: str) -> Question | None:
        return next((q for q in self.questions if q.name == name), None)

    def languages(self) -> set[str]:
        found = set(self.title)
        for question in self.questions:
            found |= set(question.label)
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurveyDefinition:
        questions = [
            Question(**{**q, "choices": [Choice(**c) for c in q.get("choices", [])]})
            for q in data["questions"]
        ]
        return cls(**{**data, "questions": questions})


def text_in(texts: Texts, language: str, fallback: str) -> str:
    """The text in the user's language, else the survey's default language, else any."""
    return texts.get(language) or texts.get(fallback) or next(iter(texts.values()), "")
