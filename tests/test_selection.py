"""Cluster selection: scores 1-5 with notes, validated; ranking by a weighted total."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.services import selection
from models import AuditEntry, Cluster
from tests.helpers import make_cluster


async def _score(sessionmaker, cluster, *scores, notes=None) -> Cluster:
    async with sessionmaker() as session:
        cluster = await session.get(Cluster, cluster.id)
        return await selection.score_cluster(
            session, cluster=cluster, importance=scores[0], promotability=scores[1], viability=scores[2],
            sustainability=scores[3], notes=notes or {},
        )


async def test_scores_and_notes_are_saved_and_logged(sessionmaker):
    cluster = await make_cluster(sessionmaker)
    await _score(sessionmaker, cluster, 5, 4, 3, 2, notes={"importance": "  largest brass   cluster in UP "})
    # A later call changes one score and one note, and keeps the rest.
    await _score(sessionmaker, cluster, None, None, 4, None, notes={"viability": "new orders from Europe"})
    async with sessionmaker() as session:
        saved = await session.get(Cluster, cluster.id)
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "cluster.score"))).all()
    assert (saved.importance, saved.promotability, saved.viability, saved.sustainability) == (5, 4, 4, 2)
    assert saved.score_notes == {"importance": "largest brass cluster in UP", "viability": "new orders from Europe"}
    assert [entry.detail for entry in entries] == [
        {"scores": ["importance", "promotability", "sustainability", "viability"], "notes": ["importance"]},
        {"scores": ["viability"], "notes": ["viability"]},
    ]
    await _score(sessionmaker, cluster, None, None, None, None, notes={"importance": ""})
    async with sessionmaker() as session:
        assert (await session.get(Cluster, cluster.id)).score_notes == {"viability": "new orders from Europe"}


@pytest.mark.parametrize("bad", [0, 6, -1, "3", 2.5, True])
async def test_scores_outside_one_to_five_are_refused_and_nothing_is_saved(sessionmaker, bad):
    cluster = await make_cluster(sessionmaker)
    with pytest.raises(selection.SelectionError, match="--viability must be a whole number from 1 to 5"):
        await _score(sessionmaker, cluster, 3, 3, bad, 3)
    async with sessionmaker() as session:
        saved = await session.get(Cluster, cluster.id)
    assert saved.importance is None and saved.viability is None


async def test_notes_only_for_the_four_criteria(sessionmaker):
    cluster = await make_cluster(sessionmaker)
    with pytest.raises(selection.SelectionError, match="not for size"):
        await _score(sessionmaker, cluster, 3, 3, 3, 3, notes={"size": "big"})
    with pytest.raises(selection.SelectionError, match="longer than 500"):
        await _score(sessionmaker, cluster, 3, 3, 3, 3, notes={"importance": "x" * 501})


async def test_ranking_by_weighted_total_with_unscored_clusters_last(sessionmaker):
    brass = await make_cluster(sessionmaker, name="Moradabad Brassware")
    glass = await make_cluster(sessionmaker, name="Firozabad Glass")
    leather = await make_cluster(sessionmaker, name="Agra Footwear")
    await make_cluster(sessionmaker, name="Unscored Cluster")
    await _score(sessionmaker, brass, 3, 4, 4, 4)  # 15
    await _score(sessionmaker, glass, 5, 3, 3, 3)  # 14
    await _score(sessionmaker, leather, 4, 4, None, 4)  # incomplete
    async with sessionmaker() as session:
        equal = await selection.ranked_clusters(session, weights={})
        weighted = await selection.ranked_clusters(session, weights={"importance": 3})
    assert [(r.cluster.name, r.total, r.rank) for r in equal] == [
        ("Moradabad Brassware", 15, 1), ("Firozabad Glass", 14, 2), ("Agra Footwear", None, None), ("Unscored Cluster", None, None),
    ]
    assert equal[0].max_total == 20 and not equal[2].complete
    assert equal[2].scores == {"importance": 4, "promotability": 4, "viability": None, "sustainability": 4}
    # Importance counted three times: 3*5 + 9 = 24 beats 3*3 + 12 = 21.
    assert [(r.cluster.name, r.total) for r in weighted[:2]] == [("Firozabad Glass", 24), ("Moradabad Brassware", 21)]
    assert weighted[0].max_total == 30


async def test_equal_totals_share_a_rank(sessionmaker):
    first = await make_cluster(sessionmaker, name="B cluster")
    second = await make_cluster(sessionmaker, name="A cluster")
    third = await make_cluster(sessionmaker, name="C cluster")
    await _score(sessionmaker, first, 4, 4, 4, 4)
    await _score(sessionmaker, second, 5, 5, 3, 3)
    await _score(sessionmaker, third, 1, 1, 1, 1)
    async with sessionmaker() as session:
        ranked = await selection.ranked_clusters(session, weights=selection.DEFAULT_WEIGHTS)
    assert [(r.cluster.name, r.rank) for r in ranked] == [("A cluster", 1), ("B cluster", 1), ("C cluster", 3)]


def test_weights_are_checked_and_parsed():
    assert selection.parse_weights("importance=2, viability=0.5") == {
        "importance": 2.0, "promotability": 1.0, "viability": 0.5, "sustainability": 1.0}
    assert selection.parse_weights("") == selection.DEFAULT_WEIGHTS
    for bad, message in [
        ("size=2", "Unknown criterion 'size'"),
        ("importance", "criterion=number"),
        ("importance=high", "must be a number"),
        ("importance=-1", "zero or more"),
        ("importance=nan", "zero or more"),
        ("importance=0,promotability=0,viability=0,sustainability=0", "At least one weight"),
    ]:
        with pytest.raises(selection.SelectionError, match=message):
            selection.parse_weights(bad)
