"""SQLModel tables, one module per aggregate. Importing this package registers every table."""

from sqlmodel import SQLModel

from models.action_plan import Activity, ActivityPerson, CompletionReport
from models.audit import AuditEntry
from models.broadcast import Broadcast
from models.cluster import CdaAssignment, Cluster
from models.dialog import DialogState, UserPreference
from models.meeting import Meeting, MeetingInvite, MeetingReminder
from models.outbox import OutboxMessage, OutboxStatus
from models.settings import BotSetting
from models.stakeholder import Membership, Stakeholder
from models.survey import (
    LinkageEdge,
    Survey,
    SurveyInvitation,
    SurveyLaunch,
    SurveyResponse,
)

metadata = SQLModel.metadata

__all__ = [
    "Activity",
    "ActivityPerson",
    "Broadcast",
    "CompletionReport",
    "Meeting",
    "MeetingInvite",
    "MeetingReminder",
    "AuditEntry",
    "BotSetting",
    "CdaAssignment",
    "Cluster",
    "DialogState",
    "LinkageEdge",
    "Membership",
    "OutboxMessage",
    "OutboxStatus",
    "Stakeholder",
    "Survey",
    "SurveyInvitation",
    "SurveyLaunch",
    "SurveyResponse",
    "UserPreference",
    "metadata",
]
