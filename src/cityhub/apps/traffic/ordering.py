"""Nested-dissection order of a road network's junctions, for the contraction hierarchy."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

#: Pieces of the graph this small are not bisected further.
_LEAF = 24


def ranges(starts: Ints, counts: Ints) -> Ints:
    """The concatenation of ``arange(starts[i], starts[i] + counts[i])`` for all i."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    out: Ints = np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)
    return out


def nested_dissection(x: Floats, y: Floats, start: Ints, neighbours: Ints) -> Ints:
    """Junctions in contraction order (lowest rank first) by recursive inertial bisection: a piece
    is split at the median of its coordinates along its principal axis, the junctions of the smaller
    side that touch the other side are the separator, and the separator comes after both halves.
    ``start``/``neighbours``: the undirected graph in CSR form."""
    n = len(x)
    side = np.zeros(n, dtype=np.int8)  # scratch: 1 left, 2 right, 0 outside the piece
    order: list[Ints] = []

    def dissect(piece: Ints) -> None:
        if len(piece) <= _LEAF:
            order.append(piece)
            return
        px, py = x[piece], y[piece]
        dx, dy = px - px.mean(), py - py.mean()
        sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
        angle = 0.5 * math.atan2(2 * sxy, sxx - syy)  # principal axis of the coordinates
        projection = dx * math.cos(angle) + dy * math.sin(angle)
        ranked = piece[np.argsort(projection, kind="stable")]
        half = len(ranked) // 2
        left, right = ranked[:half], ranked[half:]
        side[left] = 1
        side[right] = 2
        separators = []
        for own, other in ((left, 2), (right, 1)):
            counts = start[own + 1] - start[own]
            around = neighbours[ranges(start[own], counts)]
            touching = np.repeat(own, counts)[side[around] == other]
            separators.append(np.unique(touching))
        separator = min(separators, key=len)
        side[separator] = 3
        left = left[side[left] != 3]
        right = right[side[right] != 3]
        side[piece] = 0
        if len(left) == 0 or len(right) == 0:
            # the bisection separated nothing (e.g. one junction with everything around): stop here
            order.append(np.concatenate([left, right, separator]))
            return
        dissect(left)
        dissect(right)
        order.append(separator)

    if n:
        dissect(np.arange(n, dtype=np.int64))
    return np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
