"""The operator's side: settings validation and the CLI, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("database_url", "mysql://x"),
        ("telegram_base_url", "not a url"),
        ("default_language", "fr"),
        ("timezone", "India/Delhi"),
        ("cda_user_ids", "12,abc"),
        ("port", "eighty"),
    ],
)
def test_invalid_setting_names_the_variable(variable, value):
    with pytest.raises(SettingsError) as error:
        load_settings(env_file=None, **{variable: value})
    assert variable.upper() in str(error.value)


def test_webhook_requires_a_secret():
    with pytest.raises(SettingsError) as error:
        load_settings(env_file=None, webhook_url="https://bot.example.org/hook")
    assert "WEBHOOK_SECRET" in str(error.value)


def test_cda_ids_from_a_comma_separated_list():
    assert load_settings(env_file=None, cda_user_ids="1, 22 ,333").cda_user_ids == {1, 22, 333}


def run_cli(tmp_path, *args, env=None):
    environment = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "TEST_DATABASE_URL")}
    environment["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=environment,
        capture_output=True, text=True, timeout=60,
    )


def test_cli_creates_lists_and_assigns(tmp_path):
    created = run_cli(tmp_path, "cluster", "create", "Moradabad Brassware", "--sector", "brass",
                      "--district", "Moradabad", "--state", "Uttar Pradesh", "--language", "hi", "--json")
    assert created.returncode == 0, created.stderr
    cluster = json.loads(created.stdout)
    assert cluster["name"] == "Moradabad Brassware" and cluster["language"] == "hi"
    assert 8 <= len(cluster["invite_code"]) <= 32 and cluster["invite_link"] is None

    duplicate = run_cli(tmp_path, "cluster", "create", "Moradabad Brassware")
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr and duplicate.stdout == ""

    assigned = run_cli(tmp_path, "cda", "add", "424242", "--cluster", cluster["invite_code"], "--json")
    assert assigned.returncode == 0 and json.loads(assigned.stdout)["user_id"] == 424242
    again = run_cli(tmp_path, "cda", "add", "424242", "--cluster", cluster["invite_code"])
    assert again.returncode != 0 and "already a CDA" in again.stderr
    unknown = run_cli(tmp_path, "cda", "add", "424242", "--cluster", "NoSuchCode99")
    assert unknown.returncode != 0 and "cluster list" in unknown.stderr
    bad_id = run_cli(tmp_path, "cda", "add", "abc", "--cluster", cluster["invite_code"])
    assert bad_id.returncode != 0 and "not a Telegram user id" in bad_id.stderr

    listed = run_cli(tmp_path, "cluster", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["members"], r["cdas"]) for r in rows] == [("Moradabad Brassware", 0, 1)]


def test_run_without_token_says_how_to_get_one(tmp_path):
    result = run_cli(tmp_path, "run")
    assert result.returncode != 0
    assert "@BotFather" in result.stderr and ".env" in result.stderr


def test_db_upgrade_and_bad_setting(tmp_path):
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    broken = run_cli(tmp_path, "db", "upgrade", env={"TIMEZONE": "Nowhere/Here"})
    assert broken.returncode != 0 and "TIMEZONE" in broken.stderr


def test_cli_imports_surveys_and_lists_them(tmp_path):
    from tests.xlsforms import MSME_CHECK_CHOICES, MSME_CHECK_ROWS, write_xlsform

    created = json.loads(run_cli(tmp_path, "cluster", "create", "Ludhiana Bicycles", "--json").stdout)
    assert sorted(created["surveys"]) == ["activity_feedback v2026.1", "diagnostic_study v2026.1", "trust_linkage v2026.1"]
    form = write_xlsform(tmp_path / "check.xlsx", MSME_CHECK_ROWS, MSME_CHECK_CHOICES)
    imported = run_cli(tmp_path, "survey", "import", str(form), "--cluster", created["invite_code"], "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["questions"] == 5 and "Warning: हिन्दी (hi)" in imported.stderr
    again = run_cli(tmp_path, "survey", "import", str(form), "--cluster", created["invite_code"])
    assert again.returncode != 0 and "change the version" in again.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("form_id: x\nquestions:\n  - {name: a, type: calculate, label: A}\n", encoding="utf-8")
    refused = run_cli(tmp_path, "survey", "import", str(bad), "--cluster", created["invite_code"])
    assert refused.returncode != 0 and "calculate" in refused.stderr
    listed = json.loads(run_cli(tmp_path, "survey", "list", "--cluster", created["invite_code"], "--json").stdout)
    assert [row["form_id"] for row in listed] == ["activity_feedback", "diagnostic_study", "trust_linkage", "msme_check"]


def test_cli_imports_activities_all_or_nothing(tmp_path):
    created = json.loads(run_cli(tmp_path, "cluster", "create", "Agra Footwear", "--json").stdout)
    good = tmp_path / "plan.csv"
    good.write_text("year,title,category,due_date,venue,target\n"
                    "2027,Leather testing workshop,training,15/03/2027,CLRI Agra,20 firms trained\n"
                    "2027,Joint stall at the trade fair,joint_marketing,30/09/2027,Pragati Maidan,8 firms\n", encoding="utf-8")
    imported = run_cli(tmp_path, "activity", "import", str(good), "--cluster", created["invite_code"], "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["created"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("year,title,category,due_date\n2027,Visit,exposure_visit,31/02/2027\n", encoding="utf-8")
    refused = run_cli(tmp_path, "activity", "import", str(bad), "--cluster", created["invite_code"])
    assert refused.returncode != 0 and "Row 2" in refused.stderr and "Nothing was imported" in refused.stderr


def test_cli_scores_ranks_and_exports(tmp_path):
    from openpyxl import load_workbook

    first = json.loads(run_cli(tmp_path, "cluster", "create", "Firozabad Glass", "--json").stdout)
    second = json.loads(run_cli(tmp_path, "cluster", "create", "Moradabad Brass", "--json").stdout)
    run_cli(tmp_path, "cluster", "create", "Unscored Cluster")
    assert run_cli(tmp_path, "cluster", "score", first["invite_code"], "--importance", "3", "--promotability", "3",
                   "--viability", "3", "--sustainability", "3").returncode == 0
    scored = run_cli(tmp_path, "cluster", "score", second["invite_code"], "--importance", "5", "--promotability", "4",
                     "--viability", "4", "--sustainability", "2", "--importance-note", "largest brass cluster", "--json")
    assert json.loads(scored.stdout)["score_notes"] == {"importance": "largest brass cluster"}
    bad = run_cli(tmp_path, "cluster", "score", second["invite_code"], "--viability", "9")
    assert bad.returncode != 0 and "viability" in bad.stderr
    ranked = json.loads(run_cli(tmp_path, "cluster", "list", "--json").stdout)
    assert [(r["name"], r["rank"], r["total"]) for r in ranked] == [
        ("Moradabad Brass", 1, 15.0), ("Firozabad Glass", 2, 12.0), ("Unscored Cluster", None, None)]
    weighted = json.loads(run_cli(tmp_path, "cluster", "list", "--weights", "sustainability=5", "--json").stdout)
    assert weighted[0]["name"] == "Firozabad Glass"

    out = tmp_path / "moradabad.xlsx"
    exported = run_cli(tmp_path, "export", "--cluster", second["invite_code"], "--format", "xlsx", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    book = load_workbook(out, read_only=True)
    assert any("takeholder" in name for name in book.sheetnames)
    zipped = run_cli(tmp_path, "export", "--cluster", second["invite_code"], "--format", "csv", "--out", str(tmp_path / "m.zip"), "--json")
    assert json.loads(zipped.stdout)["format"] == "csv"
    missing = run_cli(tmp_path, "export", "--cluster", "NoSuchCode99", "--format", "xlsx", "--out", str(out))
    assert missing.returncode != 0 and "cluster list" in missing.stderr


def test_invite_codes_never_read_as_cli_options(monkeypatch):
    from bot.services import clusters

    drawn = iter(["-lJ_cHRmNbTQ", "_aB3dE5gH7jK"])
    monkeypatch.setattr(clusters.secrets, "token_urlsafe", lambda n: next(drawn))
    code = clusters.new_invite_code()
    assert code == "_aB3dE5gH7jK" and clusters.is_invite_code(code)
