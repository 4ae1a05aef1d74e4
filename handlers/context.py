"""Group -1: load who is writing, before any feature handler runs."""

from __future__ import annotations

from telegram import Update

from bot.context import ClusterContext
from bot.i18n import translator
from bot.languages import shipped
from bot.services.clusters import clusters_of_cda
from bot.services.stakeholders import load_identity


async def load_user(update: Update, context: ClusterContext) -> None:
    user = update.effective_user
    settings = context.settings
    if user is None:
        context.t = translator(settings.default_language, settings.timezone)
        context.language = context.t.language
        context.cda_cluster_ids = []
        return
    async with context.session() as session:
        identity = await load_identity(session, telegram_user_id=user.id)
        if user.id in settings.cda_user_ids:
            # CDAs of every cluster: rare, and the only case that needs the cluster list.
            cda_cluster_ids = [c.id for c in await clusters_of_cda(session, telegram_user_id=user.id, global_cdas=settings.cda_user_ids)]
        else:
            cda_cluster_ids = identity.assigned_cluster_ids
    stakeholder = identity.stakeholder
    preference = identity.preferred_language
    context.stakeholder = stakeholder
    context._user_id = user.id
    context.cda_cluster_ids = cda_cluster_ids
    context.coordinated_activity_ids = identity.coordinated_activity_ids
    context.dialog_state = identity.dialog_state
    # Telegram's language_code is only a first guess; what the user picked wins.
    context.language = (
        (stakeholder.language if stakeholder else preference)
        or shipped(user.language_code)
        or settings.default_language
    )
    context.t = translator(context.language, settings.timezone)
