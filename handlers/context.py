"""Group -1: load who is writing, before any feature handler runs."""

from __future__ import annotations

from telegram import Update

from bot.context import ClusterContext
from bot.i18n import Translator
from bot.languages import shipped
from bot.services.clusters import clusters_of_cda
from bot.services.stakeholders import coordinated_activities, get_stakeholder, preferred_language


async def load_user(update: Update, context: ClusterContext) -> None:
    user = update.effective_user
    settings = context.settings
    if user is None:
        context.t = Translator(settings.default_language, settings.timezone)
        context.language = context.t.language
        context.cda_cluster_ids = []
        return
    async with context.session() as session:
        stakeholder = await get_stakeholder(session, telegram_user_id=user.id)
        preference = None if stakeholder else await preferred_language(session, telegram_user_id=user.id)
        clusters = await clusters_of_cda(
            session, telegram_user_id=user.id, global_cdas=settings.cda_user_ids
        )
        coordinated = (
            await coordinated_activities(session, stakeholder_id=stakeholder.id) if stakeholder else []
        )
    context.stakeholder = stakeholder
    context._user_id = user.id
    context.cda_cluster_ids = [cluster.id for cluster in clusters]
    context.coordinated_activity_ids = coordinated
    # Telegram's language_code is only a first guess; what the user picked wins.
    context.language = (
        (stakeholder.language if stakeholder else preference)
        or shipped(user.language_code)
        or settings.default_language
    )
    context.t = Translator(context.language, settings.timezone)
