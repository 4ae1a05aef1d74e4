"""Selection of clusters, the seed's first step: the implementing agency scores each cluster from 1
to 5 on four criteria and ranks them by a weighted total.

Weights are relative: equal by default, and a criterion weighted 2 counts twice as much as one
weighted 1. A cluster still missing a score is listed after every fully scored one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit
from models import Cluster

CRITERIA = ("importance", "promotability", "viability", "sustainability")
DEFAULT_WEIGHTS: dict[str, float] = dict.fromkeys(CRITERIA, 1.0)
LOWEST, HIGHEST = 1, 5
MAX_NOTE = 500


class SelectionError(ValueError):
    """A score, note or weight that cannot be used; the message says what to do (for the CLI)."""


def _check_score(criterion: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not LOWEST <= value <= HIGHEST:
        raise SelectionError(f"--{criterion} must be a whole number from {LOWEST} to {HIGHEST}, not {value!r}.")
    return value


async def score_cluster(
    session: AsyncSession,
    *,
    cluster: Cluster,
    importance: int | None,
    promotability: int | None,
    viability: int | None,
    sustainability: int | None,
    notes: dict[str, str] | None = None,
    actor_user_id: int | None = None,
) -> Cluster:
    """Set the cluster's scores (None leaves a criterion as it is) and notes per criterion.

    A note replaces the criterion's earlier note; an empty note removes it. Nothing is saved
    when any value is invalid.
    """
    scores = {
        "importance": _check_score("importance", importance),
        "promotability": _check_score("promotability", promotability),
        "viability": _check_score("viability", viability),
        "sustainability": _check_score("sustainability", sustainability),
    }
    notes = dict(notes or {})
    unknown = sorted(set(notes) - set(CRITERIA))
    if unknown:
        raise SelectionError(f"Notes can only be given for {', '.join(CRITERIA)}; not for {', '.join(unknown)}.")
    merged = dict(cluster.score_notes or {})
    for criterion, note in notes.items():
        note = " ".join((note or "").split())
        if len(note) > MAX_NOTE:
            raise SelectionError(f"The note on {criterion} is longer than {MAX_NOTE} characters; shorten it.")
        if note:
            merged[criterion] = note
        else:
            merged.pop(criterion, None)
    changed = sorted(criterion for criterion, value in scores.items() if value is not None)
    for criterion in changed:
        setattr(cluster, criterion, scores[criterion])
    # A new dict, so the JSON column is seen as changed.
    cluster.score_notes = merged
    session.add(cluster)
    audit.record(
        session, actor_user_id=actor_user_id, action="cluster.score", cluster_id=cluster.id,
        detail={"scores": changed, "notes": sorted(notes)},
    )
    await session.commit()
    return cluster


def check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """The weights to use: the defaults, overridden by those given."""
    merged = dict(DEFAULT_WEIGHTS)
    for criterion, weight in (weights or {}).items():
        if criterion not in CRITERIA:
            raise SelectionError(f"Unknown criterion {criterion!r}; the criteria are {', '.join(CRITERIA)}.")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise SelectionError(f"The weight of {criterion} must be a number, not {weight!r}.") from None
        if not math.isfinite(weight) or weight < 0:
            raise SelectionError(f"The weight of {criterion} must be zero or more, not {weight!r}.")
        merged[criterion] = weight
    if not any(merged.values()):
        raise SelectionError("At least one weight must be above zero.")
    return merged


def parse_weights(text: str) -> dict[str, float]:
    """``importance=2,viability=1.5`` (the CLI's --weights) as a dict; unnamed criteria keep 1."""
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, separator, value = part.partition("=")
        if not separator:
            raise SelectionError(f"Write each weight as criterion=number, e.g. importance=2; got {part!r}.")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise SelectionError(f"The weight of {name.strip()} must be a number, not {value.strip()!r}.") from None
    return check_weights(weights)


@dataclass(frozen=True)
class RankedCluster:
    cluster: Cluster
    scores: dict[str, int | None]
    # The weighted sum of the scores; None until all four are scored.
    total: float | None
    # The highest total the weights allow (5 on every criterion), to print "15.5 of 20".
    max_total: float
    rank: int | None

    @property
    def complete(self) -> bool:
        return self.total is not None


def weighted_total(scores: dict[str, int | None], weights: dict[str, float]) -> float | None:
    if any(scores[criterion] is None for criterion in CRITERIA):
        return None
    return sum(weights[criterion] * scores[criterion] for criterion in CRITERIA)


async def ranked_clusters(session: AsyncSession, *, weights: dict[str, float] | None = None) -> list[RankedCluster]:
    """Every cluster, best weighted total first (ties by name); clusters missing a score last."""
    weights = check_weights(weights)
    clusters = (await session.exec(select(Cluster).order_by(col(Cluster.id)))).all()
    maximum = HIGHEST * sum(weights.values())
    entries = []
    for cluster in clusters:
        scores = {criterion: getattr(cluster, criterion) for criterion in CRITERIA}
        entries.append((cluster, scores, weighted_total(scores, weights)))
    entries.sort(key=lambda entry: (entry[2] is None, -(entry[2] or 0), entry[0].name.casefold(), entry[0].id))
    ranked, rank, previous = [], 0, None
    for position, (cluster, scores, total) in enumerate(entries, start=1):
        if total is not None and total != previous:
            rank, previous = position, total
        ranked.append(RankedCluster(cluster, scores, total, maximum, rank if total is not None else None))
    return ranked
