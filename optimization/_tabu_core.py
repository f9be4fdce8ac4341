"""The inner loop of the job-shop tabu search (optimization/tabu.py), compiled with numba.

The search state lives in flat integer arrays (machine links, heads, tails, a topological order, the tabu matrix),
so :func:`run` can stop after a number of iterations and go on in a later call: the Python side checks the clock
between calls. The moves, their estimates and the tabu rules are those described in ``optimization.tabu``. Random
choices come from numba's own generator, seeded by :func:`seed` (per thread and process).

Without numba the same functions run as plain Python (slowly: numpy scalars); numba is a dependency of SFAI.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit, objmode
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken install working, slowly
    import contextlib

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

    def objmode(**kwargs):  # in plain Python the block simply runs
        return contextlib.nullcontext()

# indices of the scalar state (``st``, int64)
IT, SINCE, CMAX, BEST, STAMP, DONE = range(6)
# DONE values: 0 running, 1 target reached, 2 no move left on the critical path, 3 incremental times differ (check)


@njit(cache=True)
def seed(s):
    np.random.seed(s)


@njit(cache=True)
def _kahn(n, jp, js, mp, ms, order, indeg):
    """Kahn's topological order of job arcs and machine arcs; returns its length (< n: a cycle)."""
    cnt = 0
    for i in range(n):
        indeg[i] = (jp[i] >= 0) + (mp[i] >= 0)
        if indeg[i] == 0:
            order[cnt] = i
            cnt += 1
    k = 0
    while k < cnt:
        i = order[k]
        k += 1
        for c in (js[i], ms[i]):
            if c >= 0:
                indeg[c] -= 1
                if indeg[c] == 0:
                    order[cnt] = c
                    cnt += 1
    return cnt


@njit(cache=True)
def _heads(lo, n, order, p, jp, mp, rel, r):
    for k in range(lo, n):
        i = order[k]
        a = jp[i]
        b = mp[i]
        x = r[a] + p[a] if a >= 0 else rel[i]
        if b >= 0 and r[b] + p[b] > x:
            x = r[b] + p[b]
        r[i] = x


@njit(cache=True)
def _tails(hi, order, p, js, ms, q):
    for k in range(hi, -1, -1):
        i = order[k]
        a = js[i]
        b = ms[i]
        x = q[a] + p[a] if a >= 0 else 0
        if b >= 0 and q[b] + p[b] > x:
            x = q[b] + p[b]
        q[i] = x


@njit(cache=True)
def _makespan(lasts, r, p):
    m = 0
    for i in lasts:
        if r[i] + p[i] > m:
            m = r[i] + p[i]
    return m


@njit(cache=True, nogil=True)
def heads_tails(p, rel, jp, js, lasts, mp, ms, r, q, order, pos, work):
    """Heads, tails and a fresh topological order; the makespan, or -1 when the machine links hold a cycle."""
    n = len(p)
    if _kahn(n, jp, js, mp, ms, order, work) < n:
        return -1
    for k in range(n):
        pos[order[k]] = k
    _heads(0, n, order, p, jp, mp, rel, r)
    _tails(n - 1, order, p, js, ms, q)
    return _makespan(lasts, r, p)


@njit(cache=True)
def _reach(s, arc_a, arc_b, pos, bound, forward, mark, stamp, buf):
    """The operations reachable from ``s`` along ``arc_a``/``arc_b`` without leaving the span (place <= ``bound``
    going forward, >= going back) into ``buf``; returns their number."""
    cnt = 1
    buf[0] = s
    mark[s] = stamp
    k = 0
    while k < cnt:
        i = buf[k]
        k += 1
        for a in (arc_a[i], arc_b[i]):
            if a >= 0 and mark[a] != stamp and (pos[a] <= bound if forward else pos[a] >= bound):
                mark[a] = stamp
                buf[cnt] = a
                cnt += 1
    return cnt


@njit(cache=True)
def _repair(u, v, js, ms, jp, mp, order, pos, markf, markb, stamp, bufa, bufb, places):
    """Repair the topological order after u -> v became v -> u (Pearce and Kelly: in the span from u to v, the
    ancestors of v go first, then the descendants of u, in the places they held)."""
    nf = _reach(u, js, ms, pos, pos[v], True, markf, stamp, bufa)
    nb = _reach(v, jp, mp, pos, pos[u], False, markb, stamp, bufb)
    for k in range(nf):
        places[k] = pos[bufa[k]]
    for k in range(nb):
        places[nf + k] = pos[bufb[k]]
    slots = np.sort(places[:nf + nb])
    fw = bufa[:nf][np.argsort(places[:nf])]
    bw = bufb[:nb][np.argsort(places[nf:nf + nb])]
    for k in range(nb):
        order[slots[k]] = bw[k]
        pos[bw[k]] = slots[k]
    for k in range(nf):
        order[slots[nb + k]] = fw[k]
        pos[fw[k]] = slots[nb + k]


@njit(cache=True)
def _swap(u, v, mp, ms):
    """Machine links after u, v (neighbours, u first) became v, u."""
    a = mp[u]
    b = ms[v]
    if a >= 0:
        ms[a] = v
    if b >= 0:
        mp[b] = u
    mp[v] = a
    ms[v] = u
    mp[u] = v
    ms[u] = b


@njit(cache=True)
def _tight_start(ops, cmax, p, rel, r, q):
    """One of ``ops`` at its release on a critical path (tail + duration + head = makespan), at random; -1: none."""
    cnt = 0
    for i in ops:
        if r[i] == rel[i] and r[i] + p[i] + q[i] == cmax:
            cnt += 1
    if cnt == 0:
        return -1
    pick = np.random.randint(cnt)
    for i in ops:
        if r[i] == rel[i] and r[i] + p[i] + q[i] == cmax:
            if pick == 0:
                return i
            pick -= 1
    return -1


@njit(cache=True)
def _blocks(cmax, p, rel, jp, js, ms, r, q, firsts, path, bstart):
    """The blocks of one critical path (random where it branches): operations in ``path``, block b is
    path[bstart[b]:bstart[b + 1]]; returns the number of blocks."""
    start = _tight_start(firsts, cmax, p, rel, r, q)
    if start < 0:  # zero durations: any operation at its release can start a critical path
        start = _tight_start(np.arange(len(p)), cmax, p, rel, r, q)
    i = start
    path[0] = i
    bstart[0] = 0
    nblk = 1
    ln = 1
    while True:
        e = r[i] + p[i]
        a = js[i]
        b = ms[i]
        na = a >= 0 and r[a] == e and e + p[a] + q[a] == cmax
        nb = b >= 0 and r[b] == e and e + p[b] + q[b] == cmax
        if na and nb:
            nxt = a if np.random.random() < 0.5 else b
        elif na:
            nxt = a
        elif nb:
            nxt = b
        else:
            break
        if nxt != b:
            bstart[nblk] = ln
            nblk += 1
        path[ln] = nxt
        ln += 1
        i = nxt
    bstart[nblk] = ln
    return nblk


@njit(cache=True)
def _in(a, path, s, e):
    """Whether ``a`` is in path[s:e] (one block)."""
    for k in range(s, e):
        if path[k] == a:
            return True
    return False


@njit(cache=True)
def _add(cx, cy, cf, cnt, x, y, fwd):
    """Append the move (x, y, fwd) to the candidate arrays; returns the new count."""
    cx[cnt] = x
    cy[cnt] = y
    cf[cnt] = fwd
    return cnt + 1


@njit(cache=True)
def candidates(n6, cmax, p, rel, jp, js, ms, r, q, firsts, path, bstart, cx, cy, cf):
    """This step's moves as (x, y, forward): N6 (Balas and Vazacopoulos), or N5's swaps written as forward moves of
    one place; returns their number. See ``optimization.tabu`` for the rules."""
    nblk = _blocks(cmax, p, rel, jp, js, ms, r, q, firsts, path, bstart)
    last = nblk - 1
    cnt = 0
    for bi in range(nblk):
        s = bstart[bi]
        e = bstart[bi + 1]
        k = e - s - 1
        if k < 1:
            continue
        if not n6:
            if bi > 0 and js[path[s]] != path[s + 1]:
                cnt = _add(cx, cy, cf, cnt, path[s], path[s + 1], True)
            if bi < last and (bi == 0 or k > 1) and js[path[e - 2]] != path[e - 1]:
                cnt = _add(cx, cy, cf, cnt, path[e - 2], path[e - 1], True)
            continue
        first_swap = -1  # the neighbour swaps already listed in this block (at most the first and the last pair)
        last_swap = -1
        for c in range(4 * k):
            # by place in the block: the first operation to before (bi > 0) or after (into the block, or past the
            # last if bi < last) each later one; then each inner operation before the last one (into the block)
            # or after it (bi < last)
            if c < 2 * k:
                j = c // 2 + 1
                x = path[s]
                y = path[s + j]
                fwd = c % 2 == 1
                if not fwd and bi == 0:
                    continue
                if fwd and not (j < k or bi < last):
                    continue
            else:
                ii = (c - 2 * k) // 2 + 1
                if ii >= k:
                    continue
                x = path[s + ii]
                y = path[e - 1]
                fwd = c % 2 == 1
                if fwd and bi >= last:
                    continue
            if ms[x] == y:  # a swap of neighbours, whichever way it is written: N5's rule
                if x == first_swap or x == last_swap or js[x] == y:
                    continue
                if not ((x == path[s] and bi > 0) or (y == path[e - 1] and bi < last)):
                    continue
                if first_swap < 0:
                    first_swap = x
                else:
                    last_swap = x
                cnt = _add(cx, cy, cf, cnt, x, y, True)
                continue
            if fwd:
                a = js[x]
                if a >= 0 and (q[a] + p[a] > q[y] + p[y] or _in(a, path, s, e)):
                    continue
            else:
                a = jp[y]
                if a >= 0 and (r[a] + p[a] > r[x] + p[x] or _in(a, path, s, e)):
                    continue
            cnt = _add(cx, cy, cf, cnt, x, y, fwd)
    return cnt


@njit(cache=True)
def _segment(x, y, ms, seg):
    """The operations after x up to y on their machine (x before y) into ``seg``; returns their number."""
    k = 0
    i = ms[x]
    while True:
        seg[k] = i
        k += 1
        if i == y:
            return k
        i = ms[i]


@njit(cache=True)
def _estimate(x, y, fwd, seg, ns, p, rel, jp, js, mp, ms, r, q, seq, rr):
    """Makespan estimate of a move from the heads and tails of the moved stretch (for a swap of neighbours,
    Taillard's: exact for the two operations, a lower bound otherwise)."""
    if fwd:  # new order: mp[x], l1 .. lk (= y), x, ms[y]
        for k in range(ns):
            seq[k] = seg[k]
        seq[ns] = x
    else:  # new order: mp[x], y, x .. l(k-1), ms[y]
        seq[0] = y
        seq[1] = x
        for k in range(ns - 1):
            seq[2 + k] = seg[k]
    m = ns + 1
    before = mp[x]
    after = ms[y]
    t = r[before] + p[before] if before >= 0 else 0
    for k in range(m):
        i = seq[k]
        a = jp[i]
        h = r[a] + p[a] if a >= 0 else rel[i]
        if h > t:
            t = h
        rr[k] = t
        t += p[i]
    t = q[after] + p[after] if after >= 0 else 0
    best = 0
    for k in range(m - 1, -1, -1):
        i = seq[k]
        a = js[i]
        tl = q[a] + p[a] if a >= 0 else 0
        if tl > t:
            t = tl
        v = rr[k] + p[i] + t
        if v > best:
            best = v
        t += p[i]
    return best


@njit(cache=True)
def insert(x, y, fwd, p, rel, jp, js, lasts, mp, ms, r, q, order, pos, markf, markb, st, bufa, bufb, places, seg):
    """Make a move as swaps of neighbours (each keeps the graph acyclic), then update the times once. ``seg`` gets
    the operations x jumped over (or that jumped over y's new place); returns (their number, new makespan)."""
    n = len(p)
    ns = _segment(x, y, ms, seg)
    if not fwd:  # the operations before y's new place: x, then the stretch without y
        for k in range(ns - 1, 0, -1):
            seg[k] = seg[k - 1]
        seg[0] = x
    lo = n
    hi = -1
    for k in range(ns):
        if fwd:  # x past each operation of the stretch in turn
            u = x
            v = seg[k]
        else:  # y before each operation of the stretch, from the last
            u = seg[ns - 1 - k]
            v = y
        if pos[u] < lo:
            lo = pos[u]
        if pos[v] > hi:
            hi = pos[v]
        _swap(u, v, mp, ms)
        st[STAMP] += 1
        _repair(u, v, js, ms, jp, mp, order, pos, markf, markb, st[STAMP], bufa, bufb, places)
    _heads(lo, n, order, p, jp, mp, rel, r)
    _tails(hi, order, p, js, ms, q)
    return ns, _makespan(lasts, r, p)


@njit(cache=True, nogil=True)  # a solve in a server thread leaves the other threads running
def run(n_iters, target, restart_after, ten_lo, ten_hi, n6, check,
        p, rel, jp, js, lasts, firsts, mrank, mp, ms, r, q, order, pos, best_mp, best_ms, tabu, st,
        markf, markb, bufa, bufb, places, path, bstart, cx, cy, cf, seg, seq, rr, r2, q2, order2, pos2, work):
    """Up to ``n_iters`` iterations of the tabu search (state in the arrays, scalars in ``st``); stops early at
    ``target`` or when no move is left (``st[DONE]``).
    ``tabu[a, mrank[b]]``: until which iteration b may not go back after a (both on one machine; ``mrank`` is an
    operation's index among its machine's operations, so the matrix is n x the most operations on a machine)."""
    done = 0
    while done < n_iters:
        if st[BEST] <= target:
            st[DONE] = 1
            return
        done += 1
        st[IT] += 1
        it = st[IT]
        if st[SINCE] >= restart_after:  # back to the best plan, a few random moves, an empty tabu list
            mp[:] = best_mp
            ms[:] = best_ms
            st[CMAX] = heads_tails(p, rel, jp, js, lasts, mp, ms, r, q, order, pos, work)
            for _ in range(np.random.randint(2, 7)):
                cnt = candidates(n6, st[CMAX], p, rel, jp, js, ms, r, q, firsts, path, bstart, cx, cy, cf)
                if cnt == 0:
                    break
                k = np.random.randint(cnt)
                st[CMAX] = insert(cx[k], cy[k], cf[k], p, rel, jp, js, lasts, mp, ms, r, q, order, pos, markf,
                                  markb, st, bufa, bufb, places, seg)[1]
            tabu[:, :] = -1
            st[SINCE] = 0
        cnt = candidates(n6, st[CMAX], p, rel, jp, js, ms, r, q, firsts, path, bstart, cx, cy, cf)
        if cnt == 0:  # nothing to move on this critical path (one job, or one machine from the start)
            st[DONE] = 2
            return
        best = st[BEST]
        pick = -1
        pick_e = 0
        ties = 0
        for c in range(cnt):
            x = cx[c]
            y = cy[c]
            fwd = cf[c]
            ns = _segment(x, y, ms, seg)
            e = _estimate(x, y, fwd, seg, ns, p, rel, jp, js, mp, ms, r, q, seq, rr)
            if e >= best:  # tabu unless it would beat the best plan: re-creating an order undone lately
                hit = False
                if fwd:
                    for k in range(ns):
                        if tabu[seg[k], mrank[x]] >= it:
                            hit = True
                            break
                else:
                    hit = tabu[y, mrank[x]] >= it
                    for k in range(ns - 1):
                        if hit:
                            break
                        hit = tabu[y, mrank[seg[k]]] >= it
                if hit:
                    continue
            if pick < 0 or e < pick_e:
                pick = c
                pick_e = e
                ties = 1
            elif e == pick_e:  # ties broken at random (reservoir sampling)
                ties += 1
                if np.random.randint(ties) == 0:
                    pick = c
        if pick < 0:
            pick = np.random.randint(cnt)
        x = cx[pick]
        y = cy[pick]
        fwd = cf[pick]
        ns, cmax = insert(x, y, fwd, p, rel, jp, js, lasts, mp, ms, r, q, order, pos, markf, markb, st, bufa, bufb,
                          places, seg)
        st[CMAX] = cmax
        t_end = it + np.random.randint(ten_lo, ten_hi + 1)
        for k in range(ns):  # the jumped-over operations may not go back behind (or before) the moved one a while
            if fwd:
                tabu[x, mrank[seg[k]]] = t_end
            else:
                tabu[seg[k], mrank[y]] = t_end
        if check:
            c2 = heads_tails(p, rel, jp, js, lasts, mp, ms, r2, q2, order2, pos2, work)
            if c2 != cmax or not (np.array_equal(r, r2) and np.array_equal(q, q2)):
                st[DONE] = 3
                return
        if cmax < best:
            st[BEST] = cmax
            best_mp[:] = mp
            best_ms[:] = ms
            st[SINCE] = 0
        else:
            st[SINCE] += 1
