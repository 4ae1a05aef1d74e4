"""The Telegram commands each role sees, with msgids for their menu descriptions.

Only commands that work are listed; later features add theirs here.
"""

from bot.i18n import N_

STAKEHOLDER_COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", N_("What you can do here")),
    ("surveys", N_("Surveys for you to answer")),
    ("activities", N_("Upcoming activities and meetings")),
    ("report", N_("Report progress on your activity")),
    ("profile", N_("See or change your details")),
    ("language", N_("Change the language")),
    ("mydata", N_("Get all the data kept about you")),
    ("forget", N_("Erase your data")),
    ("cancel", N_("Stop the current step")),
)

CDA_COMMANDS: tuple[tuple[str, str], ...] = (
    ("invite", N_("Invite link and QR poster for your cluster")),
    ("stakeholders", N_("Members of your cluster, by role")),
    ("launch", N_("Send a survey to stakeholders")),
    ("results", N_("Answers to the surveys you sent")),
    ("broadcast", N_("Send a notice to stakeholders")),
    ("meeting", N_("Call a meeting")),
    ("activity", N_("Plan and manage activities")),
    ("stats", N_("Figures and charts for your cluster")),
    ("export", N_("Download your cluster's data")),
)

# What a coordinator (a stakeholder running an activity handed over by the CDA) sees in addition.
COORDINATOR_COMMANDS: tuple[tuple[str, str], ...] = (
    ("activity", N_("Your activity: notices, RSVPs and reports")),
    ("broadcast", N_("Send a notice to your activity's participants")),
)

# Commands reserved for CDAs (and coordinators) by SPEC.md; anyone else is refused and logged.
CDA_ONLY = (
    "broadcast",
    "meeting",
    "activity",
    "launch",
    "results",
    "stats",
    "export",
    "invite",
    "stakeholders",
)
