"""The tour solver: order the points of a distance matrix into a short tour or path.

Nearest-neighbour construction, then iterated local search (2-opt + Or-opt with
neighbour lists and don't-look queues, local double-bridge kicks); exact for asymmetric
matrices. Pure over the matrix: it knows nothing of roads.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from gis.errors import RoutingError


def _default_time_limit(n: int) -> float:
    return min(4.0, max(0.2, 0.015 * n))


def _tour_cost(d: list[list[float]], tour: list[int]) -> float:
    return sum(d[tour[i - 1]][tour[i]] for i in range(len(tour)))


def _nearest_neighbour(d: list[list[float]], start: int) -> list[int]:
    n = len(d)
    left = set(range(n))
    left.discard(start)
    tour = [start]
    cur = start
    while left:
        row = d[cur]
        cur = min(left, key=row.__getitem__)
        left.discard(cur)
        tour.append(cur)
    return tour


class _LocalSearch:
    """2-opt + Or-opt over a closed tour of an (a)symmetric matrix, with neighbour lists.

    Tours are plain position arrays. For asymmetric matrices the cost of reversing a
    segment is read from prefix sums of the forward and backward edge costs, so a 2-opt
    move is still evaluated in O(1).
    """

    def __init__(self, d: list[list[float]], neigh: list[list[int]], symmetric: bool) -> None:
        self.d = d
        self.neigh = neigh
        self.sym = symmetric
        self.n = len(d)
        self.t: list[int] = []
        self.pos = [0] * self.n
        self.fw: list[float] = []
        self.bw: list[float] = []

    def load(self, tour: list[int]) -> None:
        self.t = list(tour)
        self._reindex()

    def _reindex(self) -> None:
        t, pos = self.t, self.pos
        for i, c in enumerate(t):
            pos[c] = i
        if not self.sym:
            d = self.d
            n = self.n
            fw = [0.0] * (n + 1)
            bw = [0.0] * (n + 1)
            a = b = 0.0
            for i in range(n):
                x, y = t[i], t[i + 1 - n]  # t[i + 1 - n] wraps to t[0] at the end
                a += d[x][y]
                b += d[y][x]
                fw[i + 1] = a
                bw[i + 1] = b
            self.fw, self.bw = fw, bw

    def _two_opt_delta(self, p: int, q: int) -> float:
        """Gain of reversing positions p+1..q (p may be -1)."""
        t, d = self.t, self.d
        n = self.n
        a, b, c, e = t[p], t[p + 1], t[q], t[q + 1 - n]
        delta = d[a][c] + d[b][e] - d[a][b] - d[c][e]
        if not self.sym:
            delta += (self.bw[q] - self.bw[p + 1]) - (self.fw[q] - self.fw[p + 1])
        return delta

    def _apply_two_opt(self, p: int, q: int) -> list[int]:
        t = self.t
        lo = p + 1
        t[lo : q + 1] = t[lo : q + 1][::-1]
        if self.sym:
            pos = self.pos
            for i in range(lo, q + 1):
                pos[t[i]] = i
        else:
            self._reindex()
        n = self.n
        return [t[p], t[lo], t[q], t[q + 1 - n]]

    def _try_two_opt(self, a: int) -> list[int] | None:
        pos, n = self.pos, self.n
        i = pos[a]
        for c in self.neigh[a]:
            j = pos[c]
            lo, hi = (i, j) if i < j else (j, i)
            if hi - lo < 2:
                continue
            # Both reversals below create the edge t[lo] -> t[hi].
            if hi - lo < n - 1 and self._two_opt_delta(lo, hi) < -1e-9:
                return self._apply_two_opt(lo, hi)
            if self._two_opt_delta(lo - 1, hi - 1) < -1e-9:
                return self._apply_two_opt(lo - 1, hi - 1)
        return None

    def _try_or_opt(self, a: int) -> list[int] | None:
        t, pos, d, n = self.t, self.pos, self.d, self.n
        i0 = pos[a]
        for seg_len in (1, 2, 3):
            if n < seg_len + 3:
                break
            for i in (i0, i0 - seg_len + 1):
                if i < 0 or i + seg_len > n or (seg_len == 1 and i != i0):
                    continue
                s, e = t[i], t[i + seg_len - 1]
                p, nx_ = t[i - 1], t[(i + seg_len) % n]
                gain = d[p][s] + d[e][nx_] - d[p][nx_]
                if gain <= 1e-9:
                    continue
                if self.sym or seg_len == 1:
                    rev_extra = 0.0
                else:
                    rev_extra = (self.bw[i + seg_len - 1] - self.bw[i]) - (
                        self.fw[i + seg_len - 1] - self.fw[i]
                    )
                for c in itertools.chain(self.neigh[s], self.neigh[e]):
                    j = pos[c]
                    if i <= j < i + seg_len:
                        continue
                    for k in (j - 1, j):  # slots (pred c, c) and (c, succ c)
                        kk = k % n
                        if (kk - i + 1) % n <= seg_len:  # slot touches the segment
                            continue
                        x, y = t[kk], t[(kk + 1) % n]
                        base = d[x][y]
                        if d[x][s] + d[e][y] - base - gain < -1e-9:
                            return self._apply_or_opt(i, seg_len, kk, reverse=False)
                        if d[x][e] + d[s][y] - base + rev_extra - gain < -1e-9:
                            return self._apply_or_opt(i, seg_len, kk, reverse=True)
        return None

    def _apply_or_opt(self, i: int, seg_len: int, k: int, *, reverse: bool) -> list[int]:
        t, n = self.t, self.n
        seg = t[i : i + seg_len]
        touched = [t[i - 1], t[(i + seg_len) % n], t[k], t[(k + 1) % n], seg[0], seg[-1]]
        after = t[k]
        if reverse:
            seg = seg[::-1]
        rest = t[:i] + t[i + seg_len :]
        at = rest.index(after) + 1
        self.t = rest[:at] + seg + rest[at:]
        self._reindex()
        return touched

    def run(self, queue_nodes: Sequence[int]) -> None:
        """Improve the loaded tour until no move from any queued node helps."""
        queue = deque(queue_nodes)
        queued = [False] * self.n
        for a in queue_nodes:
            queued[a] = True
        while queue:
            a = queue.popleft()
            queued[a] = False
            touched = self._try_two_opt(a) or self._try_or_opt(a)
            if touched:
                for b in (*touched, a):
                    if not queued[b]:
                        queued[b] = True
                        queue.append(b)


def _brute_force(d: list[list[float]], start: int) -> list[int]:
    others = [i for i in range(len(d)) if i != start]
    best, best_cost = None, math.inf
    for perm in itertools.permutations(others):
        tour = [start, *perm]
        c = _tour_cost(d, tour)
        if c < best_cost:
            best, best_cost = tour, c
    return best  # type: ignore[return-value]


def _solve_closed(d: list[list[float]], start: int, *, time_limit_s: float, seed: int) -> list[int]:
    """Return a short closed tour (as a permutation beginning with ``start``)."""
    n = len(d)
    if n <= 7:
        return _brute_force(d, start)
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    rng = random.Random(seed)
    arr = np.array(d)
    symmetric = bool(np.allclose(arr, arr.T))
    # min() rather than mean: a row forced to a huge cost (open-path end) still has
    # ordinary incoming neighbours that must be found.
    near = np.minimum(arr, arr.T)
    np.fill_diagonal(near, np.inf)
    k = min(10 if n <= 100 else 8, n - 1)
    neigh = np.argsort(near, axis=1, kind="stable")[:, :k].tolist()

    ls = _LocalSearch(d, neigh, symmetric)
    ls.load(_nearest_neighbour(d, start))
    ls.run(list(range(n)))
    cur = ls.t[:]
    cur_cost = _tour_cost(d, cur)
    best, best_cost = cur[:], cur_cost
    max_idle = 300 + 20 * n
    idle = 0
    max_seg = max(1, min(n // 4, 30))
    while idle < max_idle and time.perf_counter() < deadline:
        # Double-bridge kick on nearby segments ("segment" double-bridge): random ones
        # over the whole tour are almost always undone or rejected on larger n.
        rot = rng.randrange(n)
        base = cur[rot:] + cur[:rot]
        l1, l2 = rng.randint(1, max_seg), rng.randint(1, max_seg)
        gap = rng.randint(0, max_seg)
        if l1 + l2 + gap + 2 > n:
            l1, l2, gap = 1, 1, 0
        a = 1
        b, c = a + l1, a + l1 + gap
        e = c + l2
        new = base[:a] + base[c:e] + base[b:c] + base[a:b] + base[e:]
        ls.load(new)
        touched = {base[0], base[a], base[b - 1], base[b % n], base[c - 1], base[c % n]}
        touched |= {base[e - 1], base[e % n]}
        ls.run(list(touched))
        cost = _tour_cost(d, ls.t)
        if cost < cur_cost - 1e-9:
            cur, cur_cost = ls.t[:], cost
            idle = 0
            if cost < best_cost - 1e-9:
                best, best_cost = cur[:], cost
        else:
            idle += 1
            if cost <= cur_cost + 1e-9:
                cur = ls.t[:]
    i = best.index(start)
    return best[i:] + best[:i]


def solve_tour(
    matrix: np.ndarray,
    *,
    start: int = 0,
    end: int | None = None,
    time_limit_s: float | None = None,
    seed: int = 0,
) -> list[int]:
    """Order the points of a distance matrix into a short tour or path.

    Nearest-neighbour construction, then iterated local search: 2-opt and Or-opt
    (segments of 1-3, both orientations) over neighbour lists with don't-look queues,
    kicked by local double-bridge moves and accepted when not worse. Asymmetric
    matrices are handled exactly (reversal costs come from prefix sums).

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(n, n)`` costs, ``matrix[i, j]`` from i to j; finite, non-negative.
    start : int
        First point.
    end : int, optional
        Last point of an open path. None (default) makes a closed tour back to start.
    time_limit_s : float, optional
        Wall-clock budget; defaults to about 15 ms per point (0.2-4 s). The search also
        stops early once many kicks in a row brought no improvement.
    seed : int
        Seed of the kicks, for repeatable results under the same time budget.

    Returns
    -------
    list of int
        Every index once, beginning with ``start`` (and ending with ``end`` if given);
        a closed tour does not repeat ``start`` at the end.

    Raises
    ------
    RoutingError
        On an empty, non-square or non-finite matrix, or bad start/end.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        msg = f"距离矩阵必须是方阵, 收到形状 {m.shape}"
        raise RoutingError(msg)
    n = m.shape[0]
    if n == 0:
        msg = "没有巡查点, 无法排序"
        raise RoutingError(msg)
    if not (0 <= start < n) or (end is not None and not (0 <= end < n)):
        msg = f"起点/终点序号超出范围: start={start}, end={end}, 共 {n} 个点"
        raise RoutingError(msg)
    bad = ~np.isfinite(m)
    np.fill_diagonal(bad, False)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        msg = f"第 {i + 1} 个点到第 {j + 1} 个点之间没有可通行的道路"
        raise RoutingError(msg)
    m = m.copy()
    np.fill_diagonal(m, 0.0)
    if n == 1:
        return [start]
    if end is not None and end == start:
        end = None
    if n == 2:
        return [start, 1 - start]
    if end is not None:
        # Open path start→end as a closed tour where end must go straight back to start.
        big = float(m.max()) * n + 1.0
        m[end, :] = big
        m[end, start] = 0.0
    limit = _default_time_limit(n) if time_limit_s is None else max(0.0, float(time_limit_s))
    tour = _solve_closed(m.tolist(), start, time_limit_s=limit, seed=seed)
    if end is not None and tour[-1] != end:  # cannot happen unless the budget was 0
        tour.remove(end)
        tour.append(end)
    return tour
