"""SQLModel tables, one module per aggregate. Importing this package registers every table."""

from sqlmodel import SQLModel

from models.audit import AuditEntry
from models.cluster import CdaAssignment, Cluster
from models.dialog import DialogState, UserPreference
from models.settings import BotSetting
from models.stakeholder import Membership, Stakeholder

metadata = SQLModel.metadata

__all__ = [
    "AuditEntry",
    "BotSetting",
    "CdaAssignment",
    "Cluster",
    "DialogState",
    "Membership",
    "Stakeholder",
    "UserPreference",
    "metadata",
]
