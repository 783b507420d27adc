"""Pareto arithmetic for multi-objective search: dominance, NSGA-II ranking, hypervolume.

Every objective is larger-is-better (a symnas tuple reward). The functions
take plain sequences of equal-length tuples and return indices or numbers, so
evolution, DE and the benchmarks share one implementation:

- :func:`nondominated_sort`: the NSGA-II front number of each point (0: not dominated);
- :func:`crowding`: NSGA-II crowding distance within a set of points;
- :func:`select`: NSGA-II environmental selection (by front, then crowding);
- :func:`hypervolume`: the volume a set dominates above a reference point.

Example:

>>> pts = [(1.0, 5.0), (2.0, 4.0), (3.0, 1.0), (1.5, 3.0), (0.5, 0.5)]
>>> nondominated_sort(pts)
[0, 0, 0, 1, 2]
>>> select(pts, 3)
[0, 1, 2]
>>> hypervolume(pts, reference=(0.0, 0.0))    # 1*5 + 1*4 + 1*1
10.0
"""
from __future__ import annotations

import math
from typing import Sequence

Point = Sequence[float]

__all__ = ["dominates", "nondominated_sort", "crowding", "select", "sort_key", "hypervolume"]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y in zip(a, b):
        if x < y:
            return False
        if x > y:
            better = True
    return better


def nondominated_sort(points: Sequence[Point]) -> list[int]:
    """The front number of each point (fast non-dominated sort, Deb et al. 2002).

    Two objectives take ``O(n log n)`` per front; more take ``O(m n^2)``.
    """
    n = len(points)
    rank = [0] * n
    if n == 0:
        return rank
    if len(points[0]) == 2:
        return _sort2(points)
    dominated: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated[j].append(i)
                count[i] += 1
    front = [i for i in range(n) if count[i] == 0]
    level = 0
    while front:
        nxt = []
        for i in front:
            rank[i] = level
            for j in dominated[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        front, level = nxt, level + 1
    return rank


def _sort2(points: Sequence[Point]) -> list[int]:
    """Front numbers for two objectives: sweep by the first, track the second per front."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    rank = [0] * len(points)
    best2: list[float] = []          # per front: the best second objective seen so far
    last: list[tuple[float, float]] = []   # per front: the last point placed (ties)
    for i in order:
        x, y = points[i][0], points[i][1]
        # the first front whose members do not dominate (x, y)
        lo, hi = 0, len(best2)
        while lo < hi:               # best2 is decreasing over fronts
            mid = (lo + hi) // 2
            if best2[mid] > y or (best2[mid] == y and last[mid][0] > x):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(best2):
            best2.append(y)
            last.append((x, y))
        else:                        # not dominated by front lo, so y >= best2[lo]
            best2[lo] = y
            last[lo] = (x, y)
        rank[i] = lo
    return rank


def crowding(points: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance of each point within ``points`` (extremes: infinite)."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi <= lo:
            continue
        for a, b, c in zip(order, order[1:], order[2:]):
            dist[b] += (points[c][m] - points[a][m]) / (hi - lo)
    return dist


def sort_key(points: Sequence[Point]) -> list[tuple[int, float]]:
    """``(front, -crowding)`` of each point: smaller is better (NSGA-II's crowded comparison)."""
    rank = nondominated_sort(points)
    key: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    fronts: dict[int, list[int]] = {}
    for i, r in enumerate(rank):
        fronts.setdefault(r, []).append(i)
    for r, members in fronts.items():
        for i, d in zip(members, crowding([points[i] for i in members])):
            key[i] = (r, -d)
    return key


def select(points: Sequence[Point], k: int) -> list[int]:
    """Indices of the ``k`` points NSGA-II keeps: whole fronts, the last one cut by crowding.

    Ties keep the earlier point; the result is in index order.
    """
    if k >= len(points):
        return list(range(len(points)))
    rank = nondominated_sort(points)
    fronts: dict[int, list[int]] = {}
    for i, r in enumerate(rank):
        fronts.setdefault(r, []).append(i)
    kept: list[int] = []
    for r in sorted(fronts):
        members = fronts[r]
        if len(kept) + len(members) <= k:
            kept += members
            continue
        d = crowding([points[i] for i in members])
        by_crowding = sorted(range(len(members)), key=lambda j: (-d[j], members[j]))
        kept += [members[j] for j in by_crowding[:k - len(kept)]]
        break
    return sorted(kept)


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The volume dominated by ``points`` and dominating ``reference`` (all maximized).

    Points that do not dominate the reference add nothing. Exact; two
    objectives take ``O(n log n)``, more are computed by slicing (fine for
    the few hundred points of a search).
    """
    pts = [tuple(float(x) for x in p) for p in points
           if all(x > r for x, r in zip(p, reference))]
    return _hv(pts, tuple(float(r) for r in reference))


def _hv(pts: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not pts:
        return 0.0
    if len(ref) == 1:
        return max(p[0] for p in pts) - ref[0]
    if len(ref) == 2:
        total, best_y = 0.0, ref[1]
        for x, y in sorted(pts, key=lambda p: (-p[0], -p[1])):
            if y > best_y:
                total += (x - ref[0]) * (y - best_y)
                best_y = y
        return total
    # slice along the last objective: each slab's volume is the (m-1)-D hypervolume above it
    pts = sorted(pts, key=lambda p: -p[-1])
    total = 0.0
    for i, p in enumerate(pts):
        low = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if p[-1] > low:
            total += (p[-1] - low) * _hv([q[:-1] for q in pts[:i + 1]], ref[:-1])
    return total
