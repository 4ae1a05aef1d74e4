"""Per-update context: who is writing, in which language, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telegram.ext import Application, CallbackContext, ExtBot

from bot.config import Settings
from bot.db import SessionMaker
from bot.i18n import Translator

if TYPE_CHECKING:
    from models import DialogState, Stakeholder


@dataclass
class Deps:
    """Process-wide objects. Kept off bot_data so nothing tries to pickle an engine."""

    settings: Settings
    sessionmaker: SessionMaker
    extra: dict[str, object] = field(default_factory=dict)


class ClusterApplication(Application):
    deps: Deps


class ClusterContext(CallbackContext[ExtBot, dict, dict, dict]):
    """Filled once per update by handlers.context.load_user (group -1)."""

    stakeholder: Stakeholder | None = None
    t: Translator
    language: str
    cda_cluster_ids: list[int]
    coordinated_activity_ids: list[int] = []
    # The user's persisted flow as it was when the update arrived (read with the identity, to
    # spare every typed message a query of its own); load_flow reads it afresh mid-update.
    dialog_state: DialogState | None = None

    @property
    def deps(self) -> Deps:
        return self.application.deps  # type: ignore[attr-defined]

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    def session(self):
        return self.deps.sessionmaker()

    @property
    def is_cda(self) -> bool:
        return bool(getattr(self, "cda_cluster_ids", None)) or (
            self._user_id in self.settings.cda_user_ids
        )

    @property
    def is_coordinator(self) -> bool:
        return bool(self.coordinated_activity_ids)

    _user_id: int = 0
