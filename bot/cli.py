"""The operator's command line: ``cluster-bot`` / ``python -m bot``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.config import Settings, SettingsError, load_settings
from bot.db import create_engine, create_sessionmaker, upgrade_database
from bot.languages import LANGUAGES
from bot.services import clusters as cluster_service
from bot.services import exports, selection
from bot.services.activity_import import import_activities
from bot.services.selection import CRITERIA
from bot.services.surveys import service as survey_service
from bot.services.surveys.loaders import SurveyFormatError, load_file

NO_TOKEN = (
    "BOT_TOKEN is not set. Open Telegram, talk to @BotFather, send /newbot and follow the steps; "
    "then put the token it gives you in a file named .env in this folder as BOT_TOKEN=123456:ABC... "
    "(or set BOT_TOKEN in the environment) and run this again."
)


class CliError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cluster-bot", description="Cluster Bot for MSME cluster development.")
    commands = parser.add_subparsers(dest="command")

    commands.add_parser("run", help="apply migrations, then serve (polling, or webhook when WEBHOOK_URL is set)")

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations")

    cluster = commands.add_parser("cluster", help="clusters").add_subparsers(dest="cluster_command", required=True)
    create = cluster.add_parser("create", help="create a cluster and print its invite code and link")
    create.add_argument("name")
    create.add_argument("--sector")
    create.add_argument("--district")
    create.add_argument("--state")
    create.add_argument("--language", choices=list(LANGUAGES), help="the cluster's default language")
    create.add_argument("--json", action="store_true", help="print one JSON document")
    listing = cluster.add_parser("list", help="clusters with counts, ranked by their weighted selection score")
    listing.add_argument("--weights", default="", help="e.g. importance=2,viability=1.5 (unnamed criteria weigh 1)")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    score = cluster.add_parser("score", help="score a cluster on the four selection criteria (1-5 each)")
    score.add_argument("code", help="the cluster's invite code")
    for criterion in CRITERIA:
        score.add_argument(f"--{criterion}", type=int, help="1 (low) to 5 (high)")
        score.add_argument(f"--{criterion}-note", dest=f"{criterion}_note", help="why this score (optional)")
    score.add_argument("--json", action="store_true", help="print one JSON document")

    export = commands.add_parser("export", help="write a cluster's data as XLSX or a zip of CSV files")
    export.add_argument("--cluster", required=True, help="the cluster's invite code")
    export.add_argument("--format", required=True, choices=["xlsx", "csv"])
    export.add_argument("--out", required=True, help="the file to write")
    export.add_argument("--language", choices=list(LANGUAGES), help="language of choice labels (default: the cluster's)")
    export.add_argument("--json", action="store_true", help="print one JSON document")

    survey = commands.add_parser("survey", help="surveys").add_subparsers(dest="survey_command", required=True)
    survey_import = survey.add_parser("import", help="load a survey from YAML or an XLSForm .xlsx")
    survey_import.add_argument("file")
    survey_import.add_argument("--cluster", required=True, help="the cluster's invite code")
    survey_import.add_argument("--json", action="store_true", help="print one JSON document")
    survey_list = survey.add_parser("list", help="surveys and their response counts")
    survey_list.add_argument("--cluster", help="only this cluster (invite code)")
    survey_list.add_argument("--json", action="store_true", help="print one JSON document")

    activity = commands.add_parser("activity", help="the action plan").add_subparsers(dest="activity_command", required=True)
    activity_import = activity.add_parser("import", help="load activities from a CSV or XLSX file (all rows or none)")
    activity_import.add_argument("file")
    activity_import.add_argument("--cluster", required=True, help="the cluster's invite code")
    activity_import.add_argument("--json", action="store_true", help="print one JSON document")

    cda = commands.add_parser("cda", help="cluster development agents").add_subparsers(dest="cda_command", required=True)
    add = cda.add_parser("add", help="make a Telegram user a CDA of a cluster")
    add.add_argument("user_id", help="the CDA's numeric Telegram user id")
    add.add_argument("--cluster", required=True, help="the cluster's invite code")
    add.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


async def _with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    engine = create_engine(settings.database_url)
    try:
        await upgrade_database(engine)
        async with create_sessionmaker(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _cluster_document(cluster, link: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": cluster.id,
        "name": cluster.name,
        "sector": cluster.sector,
        "district": cluster.district,
        "state": cluster.state,
        "language": cluster.language,
        "timezone": cluster.timezone,
        "invite_code": cluster.invite_code,
        "invite_link": link,
        "importance": cluster.importance,
        "promotability": cluster.promotability,
        "viability": cluster.viability,
        "sustainability": cluster.sustainability,
        **extra,
    }


async def _create_cluster(session, args, settings: Settings) -> dict[str, Any]:
    cluster = await cluster_service.create_cluster(
        session,
        name=args.name,
        sector=args.sector,
        district=args.district,
        state=args.state,
        language=args.language or settings.default_language,
        timezone=settings.timezone,
    )
    templates = await survey_service.install_templates(session, cluster=cluster)
    return _cluster_document(
        cluster,
        await cluster_service.invite_link(session, cluster=cluster),
        surveys=[f"{survey.form_id} v{survey.version}" for survey in templates],
    )


async def _list_clusters(session, args, _settings) -> list[dict[str, Any]]:
    try:
        weights = selection.parse_weights(args.weights)
        ranked = await selection.ranked_clusters(session, weights=weights)
    except selection.SelectionError as error:
        raise CliError(str(error)) from None
    counts = {summary.cluster.id: summary for summary in await cluster_service.list_clusters(session)}
    return [
        _cluster_document(
            entry.cluster,
            await cluster_service.invite_link(session, cluster=entry.cluster),
            members=counts[entry.cluster.id].members,
            cdas=counts[entry.cluster.id].cdas,
            rank=entry.rank,
            total=entry.total,
            max_total=entry.max_total,
            score_notes=entry.cluster.score_notes,
        )
        for entry in ranked
    ]


async def _score_cluster(session, args, _settings) -> dict[str, Any]:
    cluster = await cluster_service.require_cluster(session, code=args.code)
    scores = {criterion: getattr(args, criterion) for criterion in CRITERIA}
    notes = {criterion: getattr(args, f"{criterion}_note") for criterion in CRITERIA if getattr(args, f"{criterion}_note") is not None}
    if all(value is None for value in scores.values()) and not notes:
        raise CliError("Give at least one score, e.g. --importance 4 (1 = low, 5 = high).")
    try:
        cluster = await selection.score_cluster(session, cluster=cluster, notes=notes, **scores)
    except selection.SelectionError as error:
        raise CliError(str(error)) from None
    return _cluster_document(cluster, await cluster_service.invite_link(session, cluster=cluster), score_notes=cluster.score_notes)


async def _export(session, args, _settings) -> dict[str, Any]:
    cluster = await cluster_service.require_cluster(session, code=args.cluster)
    try:
        name, content = await exports.write_export(
            session, cluster=cluster, fmt=args.format, language=args.language or cluster.language
        )
    except exports.ExportError as error:
        raise CliError(str(error)) from None
    out = Path(args.out)
    try:
        out.write_bytes(content)
    except OSError as error:
        raise CliError(f"Cannot write {out}: {error.strerror}.") from None
    return {"cluster": cluster.name, "path": str(out), "bytes": len(content), "format": args.format}


async def _add_cda(session, args, _settings) -> dict[str, Any]:
    try:
        user_id = int(args.user_id)
    except ValueError:
        raise CliError(f"{args.user_id!r} is not a Telegram user id; it is a number such as 123456789.") from None
    cluster = await cluster_service.require_cluster(session, code=args.cluster)
    await cluster_service.add_cda(session, telegram_user_id=user_id, cluster=cluster)
    return {"user_id": user_id, "cluster_id": cluster.id, "cluster": cluster.name}


async def _import_survey(session, args, _settings) -> dict[str, Any]:
    cluster = await cluster_service.require_cluster(session, code=args.cluster)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file.")
    try:
        result = load_file(path)
    except SurveyFormatError as error:
        raise CliError(f"{path.name}: {error}") from None
    survey = await survey_service.import_survey(session, cluster=cluster, result=result, source=path.suffix.lstrip(".").lower())
    for warning in result.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    return {**_survey_document(survey, 0, 0, 0), "cluster": cluster.name, "warnings": result.warnings}


async def _import_activities(session, args, _settings) -> dict[str, Any]:
    cluster = await cluster_service.require_cluster(session, code=args.cluster)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file.")
    result = await import_activities(session, cluster=cluster, filename=path.name, data=path.read_bytes(), actor_user_id=None)
    if not result.ok:
        raise CliError("\n".join(str(problem) for problem in result.problems) + "\nNothing was imported; fix the rows above and run the command again.")
    return {"cluster": cluster.name, "created": len(result.activities), "ids": [a.id for a in result.activities]}


def _survey_document(survey, launches: int, responses: int, completed: int) -> dict[str, Any]:
    return {
        "id": survey.id,
        "cluster_id": survey.cluster_id,
        "form_id": survey.form_id,
        "version": survey.version,
        "title": survey.title.get(survey.default_language) or survey.form_id,
        "languages": sorted(survey.title),
        "anonymous": survey.anonymous,
        "questions": len(survey.definition.get("questions", [])),
        "launches": launches,
        "responses": responses,
        "completed": completed,
    }


async def _list_surveys(session, args, _settings) -> list[dict[str, Any]]:
    cluster_id = None
    if args.cluster:
        cluster_id = (await cluster_service.require_cluster(session, code=args.cluster)).id
    return [
        _survey_document(item.survey, item.launches, item.responses, item.completed)
        for item in await survey_service.list_surveys(session, cluster_id=cluster_id)
    ]


def _print_human(command: str, result: Any) -> None:
    if command == "create":
        print(f"Created cluster {result['name']!r} (id {result['id']}).")
        print(f"Invite code: {result['invite_code']}")
        print(
            f"Invite link: {result['invite_link']}"
            if result["invite_link"]
            else "Invite link: known once the bot has started (it learns its username from Telegram)."
        )
        if result.get("surveys"):
            print("Survey templates installed: " + ", ".join(result["surveys"]))
    elif command == "list":
        if not result:
            print("No clusters yet. Create one with: cluster-bot cluster create NAME")
        for row in result:
            score = f"score={row['total']:g}/{row['max_total']:g} (#{row['rank']})" if row["total"] is not None else "score=not yet"
            print(
                f"{row['id']:>4}  {row['invite_code']:<14} {row['name']}  "
                f"members={row['members']} cdas={row['cdas']} {score}  {row['invite_link'] or ''}".rstrip()
            )
    elif command == "score":
        print(f"Scored {result['name']!r}: " + ", ".join(f"{c}={result[c]}" for c in CRITERIA))
    elif command == "export":
        print(f"Wrote {result['path']} ({result['bytes']:,} bytes) for {result['cluster']!r}.")
    elif command == "import":
        print(f"Imported {result['form_id']} v{result['version']} ({result['questions']} questions) into {result['cluster']!r}.")
    elif command == "surveys":
        if not result:
            print("No surveys yet. Import one with: cluster-bot survey import FILE --cluster CODE")
        for row in result:
            print(f"{row['id']:>4}  {row['form_id']} v{row['version']}  {row['title']}  "
                  f"launches={row['launches']} responses={row['responses']} completed={row['completed']}")
    elif command == "activities":
        print(f"Imported {result['created']} activities into {result['cluster']!r}.")
    elif command == "add":
        print(f"User {result['user_id']} is now a CDA of {result['cluster']!r}.")


# A pause between getUpdates calls while updates keep coming: a busy bot then fetches them in
# batches instead of paying a whole request for each one. An idle bot is unaffected -- its
# long poll returns as soon as the next update arrives.
POLL_INTERVAL = 0.05


def _serve(settings: Settings) -> int:
    from bot.app import build_application

    if not settings.bot_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2

    async def _migrate() -> None:
        engine = create_engine(settings.database_url)
        await upgrade_database(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    application = build_application(settings)
    if settings.webhook_url:
        application.run_webhook(
            listen="0.0.0.0",
            port=settings.port,
            url_path=urlparse(settings.webhook_url).path.lstrip("/"),
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret,
            allowed_updates=["message", "callback_query", "my_chat_member"],
        )
    else:
        application.run_polling(
            allowed_updates=["message", "callback_query", "my_chat_member"], poll_interval=POLL_INTERVAL
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        command = args.command or "run"
        if command == "run":
            return _serve(settings)
        if command == "db":
            asyncio.run(_with_session(settings, lambda _session: asyncio.sleep(0)))
            print("Database is up to date.")
            return 0
        if command == "export":
            result = asyncio.run(_with_session(settings, lambda session: _export(session, args, settings)))
            _emit(args, "export", result)
            return 0
        work, sub = {
            ("cluster", "create"): (_create_cluster, "create"),
            ("cluster", "list"): (_list_clusters, "list"),
            ("cluster", "score"): (_score_cluster, "score"),
            ("cda", "add"): (_add_cda, "add"),
            ("survey", "import"): (_import_survey, "import"),
            ("survey", "list"): (_list_surveys, "surveys"),
            ("activity", "import"): (_import_activities, "activities"),
        }[(command, getattr(args, f"{command}_command"))]
        result = asyncio.run(_with_session(settings, lambda session: work(session, args, settings)))
    except (SettingsError, CliError, cluster_service.ClusterError, survey_service.SurveyError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    _emit(args, sub, result)
    return 0


def _emit(args, sub: str, result: Any) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        _print_human(sub, result)
