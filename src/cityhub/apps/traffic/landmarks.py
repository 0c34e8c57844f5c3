"""Landmark distances for ALT: the network as a scipy sparse graph and its shortest-path trees."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cityhub.apps.traffic.network import RoadNetwork

# Distances to unreachable nodes: finite, so that differences stay well defined. A bound of about
# UNREACHABLE proves that the target cannot be reached at all.
UNREACHABLE = 1e12


def csgraph(network: RoadNetwork, weights: npt.NDArray[np.float64], *, reverse: bool) -> Any:
    """The graph as a scipy sparse matrix (``reverse``: every segment turned around)."""
    from scipy.sparse import csr_matrix

    n = network.node_count
    rows, cols = (network.dst, network.src) if reverse else (network.src, network.dst)
    # csr_matrix sums parallel edges: keep the cheapest of each pair first
    key = rows * n + cols
    order = np.lexsort((weights, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    keep = order[first]
    return csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n))


def strong_components(graph: Any) -> list[int]:
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(graph, directed=True, connection="strong")
    found: list[int] = labels.tolist()
    return found


def distances(graph: Any, sources: Sequence[int]) -> npt.NDArray[np.float64]:
    """Distances from each source to every node of a :func:`_csgraph`, UNREACHABLE where none."""
    from scipy.sparse.csgraph import dijkstra

    found = dijkstra(graph, directed=True, indices=list(sources))
    return np.where(np.isfinite(found), found, UNREACHABLE)
