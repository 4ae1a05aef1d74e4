"""The cluster's linkage network, wave by wave, from the trust & linkage answers.

Every pick of a ``select_stakeholders`` question is stored as a LinkageEdge "source works with
target". A tie is an unordered pair: it exists when either side named the other, and counts once
when both did. The network of a wave has every current member as a node, so density and shares
compare across waves over the same people.

Loading is async (streamed in partitions); measuring is plain networkx and CPU-bound, so callers
run it in a worker thread (``stats.off_loop``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import networkx as nx
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Cluster, LinkageEdge, Membership, Stakeholder, Survey, SurveyLaunch
from models.stakeholder import Role

PARTITION = 1000
MOST_CONNECTED = 5
# The seed's question: do firms reach the institutions that support them?
FIRM_ROLES = frozenset({Role.MSME_OWNER})
SUPPORT_ROLES = frozenset({Role.SUPPORT_INSTITUTION, Role.BANK})


@dataclass(frozen=True)
class Member:
    name: str
    role: str


@dataclass
class WaveEdges:
    form_id: str
    title: dict[str, str]
    default_language: str
    wave: int
    edges: list[tuple[int, int]]


@dataclass
class LinkageData:
    members: dict[int, Member]
    waves: list[WaveEdges]


@dataclass(frozen=True)
class Connected:
    stakeholder_id: int
    name: str
    role: str
    degree: int


@dataclass
class NetworkWave:
    form_id: str
    title: dict[str, str]
    default_language: str
    wave: int
    members: int
    ties: int
    density: float
    firms: int
    firms_linked: int
    most_connected: list[Connected] = field(default_factory=list)
    previous: NetworkWave | None = None

    @property
    def firm_share(self) -> float | None:
        """Share of firms (MSME owners) with at least one tie to a support institution or bank."""
        return self.firms_linked / self.firms if self.firms else None

    @property
    def ties_change(self) -> int | None:
        return self.ties - self.previous.ties if self.previous else None

    @property
    def density_change(self) -> float | None:
        return self.density - self.previous.density if self.previous else None

    @property
    def share_change(self) -> float | None:
        if self.previous is None or self.firm_share is None or self.previous.firm_share is None:
            return None
        return self.firm_share - self.previous.firm_share


def linkage_questions(definition: dict) -> list[str]:
    return [q["name"] for q in definition.get("questions", []) if q.get("type") == "select_stakeholders"]


async def load_linkage(session: AsyncSession, *, cluster: Cluster) -> LinkageData:
    members: dict[int, Member] = {}
    result = await session.stream(
        select(Stakeholder.id, Stakeholder.name, Stakeholder.role)
        .join(Membership, col(Membership.stakeholder_id) == Stakeholder.id)
        .where(Membership.cluster_id == cluster.id)
    )
    async for partition in result.partitions(PARTITION):
        for stakeholder_id, name, role in partition:
            members[stakeholder_id] = Member(name, role)
        await asyncio.sleep(0)

    surveys = (await session.exec(
        select(Survey.id, Survey.form_id, Survey.title, Survey.default_language, Survey.definition)
        .where(Survey.cluster_id == cluster.id).order_by(col(Survey.id))
    )).all()
    forms = {sid: (form_id, title, language) for sid, form_id, title, language, definition in surveys
             if linkage_questions(definition)}
    if not forms:
        return LinkageData(members, [])
    launches = (await session.exec(
        select(SurveyLaunch.id, SurveyLaunch.survey_id, SurveyLaunch.wave)
        .where(SurveyLaunch.cluster_id == cluster.id, col(SurveyLaunch.survey_id).in_(list(forms)))
        .order_by(col(SurveyLaunch.id))
    )).all()
    waves: dict[tuple[str, int], WaveEdges] = {}
    wave_of_launch: dict[int, WaveEdges] = {}
    for launch_id, survey_id, wave in launches:
        form_id, title, language = forms[survey_id]
        entry = waves.get((form_id, wave))
        if entry is None:
            entry = waves[(form_id, wave)] = WaveEdges(form_id, dict(title or {}), language, wave, [])
        wave_of_launch[launch_id] = entry
    if wave_of_launch:
        result = await session.stream(
            select(LinkageEdge.launch_id, LinkageEdge.source_stakeholder_id, LinkageEdge.target_stakeholder_id)
            .where(LinkageEdge.cluster_id == cluster.id, col(LinkageEdge.launch_id).in_(list(wave_of_launch)))
        )
        async for partition in result.partitions(PARTITION):
            for launch_id, source, target in partition:
                wave_of_launch[launch_id].edges.append((source, target))
            await asyncio.sleep(0)
    ordered = sorted(waves.values(), key=lambda entry: (entry.form_id, entry.wave))
    return LinkageData(members, ordered)


def build_graph(members: dict[int, Member], edges: list[tuple[int, int]]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(members)
    graph.add_edges_from((source, target) for source, target in edges if source != target)
    return graph


@contextmanager
def graph_of(members: dict[int, Member], edges: list[tuple[int, int]]) -> Iterator[nx.Graph]:
    """The wave's graph, emptied afterwards.

    networkx caches views (degree, adjacency) that point back at their graph: a reference cycle,
    so a dropped graph waits for the cyclic collector with a dict per node and per tie, tens of
    thousands in a large cluster, and that collection stalls the event loop. Emptying it frees
    them at once."""
    graph = build_graph(members, edges)
    try:
        yield graph
    finally:
        graph.clear()


def most_connected(graph: nx.Graph, members: dict[int, Member], count: int = MOST_CONNECTED) -> list[Connected]:
    def name(node: int) -> str:
        member = members.get(node)
        return member.name if member else ""

    ranked = sorted((node for node, degree in graph.degree() if degree), key=lambda node: (-graph.degree(node), name(node), node))
    return [
        Connected(node, name(node), members[node].role if node in members else Role.OTHER, graph.degree(node))
        for node in ranked[:count]
    ]


def measure_wave(members: dict[int, Member], wave: WaveEdges) -> NetworkWave:
    firms = [node for node, member in members.items() if member.role in FIRM_ROLES]
    with graph_of(members, wave.edges) as graph:
        linked = sum(
            1 for firm in firms
            if any(neighbour in members and members[neighbour].role in SUPPORT_ROLES for neighbour in graph[firm])
        )
        return NetworkWave(
            form_id=wave.form_id, title=wave.title, default_language=wave.default_language, wave=wave.wave,
            members=graph.number_of_nodes(), ties=graph.number_of_edges(), density=nx.density(graph),
            firms=len(firms), firms_linked=linked, most_connected=most_connected(graph, members),
        )


def measure(data: LinkageData) -> list[NetworkWave]:
    """Figures per wave, each linked to the previous wave of the same survey. CPU-bound."""
    measured: list[NetworkWave] = []
    for wave in data.waves:
        current = measure_wave(data.members, wave)
        if measured and measured[-1].form_id == current.form_id:
            current.previous = measured[-1]
        measured.append(current)
    return measured
