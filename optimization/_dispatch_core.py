"""The dispatching rules' generation scheme (optimization/heuristics.py), compiled with numba.

:func:`run` is the same serial generation scheme as ``heuristics.dispatch`` without a peak power cap: Giffler-Thompson
candidates (ready operations that can start before the earliest completion), the rule's priority, ties broken by
completion and then by operation index, the earliest gap of each eligible machine that respects setups, calendars and
maintenance, the fastest completion over the machines (ties: earlier start, then the machine id). It gives the same
plans as the Python scheme (tests/optimization/test_lns_dispatch.py compares both with the reference generator), about
40 times faster, so the tail re-dispatch search of big plans (``heuristics.tail_search``) makes many more moves.

Every machine's timeline is one row of three int64 arrays (starts, ends, families; -1: no family, -2: a maintenance
window), kept sorted by (start, end). The problem's tables come from :class:`Tables`, built once per problem.

Without numba the same functions run as plain Python (very slowly); numba is a dependency of SFAI.
"""

from __future__ import annotations

import itertools
import time
import warnings
import weakref

import numpy as np

from optimization._tabu_core import njit, objmode  # numba's, or plain-Python stand-ins where numba is missing

try:  # the deadline's clock is read in object mode every 64 placements: a moment with the GIL, no parallelism lost
    from numba.core.errors import NumbaWarning

    warnings.filterwarnings("ignore", message="Code running in object mode won't allow parallel execution",
                            category=NumbaWarning)
except ImportError:  # pragma: no cover
    pass

BIG = 1 << 62
RULE_CODES = {"mwkr": 0, "spt": 1, "edd": 2, "atc": 3, "atc_fast": 4}

# a solve's stop requests (``heuristics.Stop``) by token, for :func:`run`'s object-mode clock read: a rule running on
# the solve's own thread (no other thread then reads the request for it) sees a stop within 64 placements
_STOPS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_TOKENS = itertools.count(1)
NO_STOP = np.zeros(1, np.int64)  # the flag of a dispatch that no stop request reaches (never set)


def watch(stop) -> int:  # noqa: ANN001 - a heuristics.Stop
    """A token under which :func:`run` polls ``stop`` (held weakly: it ends with the request)."""
    token = next(_TOKENS)
    _STOPS[token] = stop
    return token


def stop_requested(token: int) -> int:
    """1 when the stop request of ``token`` is set (it then sets its flag too), else 0; read in object mode."""
    stop = _STOPS.get(token)
    return 1 if stop is not None and stop() else 0


@njit(cache=True)
def _bisect_right(a, lo, hi, x):
    """First index in a[lo:hi] (sorted) whose value is > x (returned as an absolute index)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def _push(bs, be, b0, b1, t, dur):
    """Earliest t' >= t such that [t', t' + dur) overlaps no block in bs/be[b0:b1] (ends sorted)."""
    if dur <= 0:
        return t
    while True:
        i = _bisect_right(be, b0, b1, t)
        if i < b1 and bs[i] < t + dur:
            t = be[i]
            continue
        return t


@njit(cache=True)
def _push_back(bs, be, b0, b1, t, dur):
    """Latest t' <= t such that [t', t' + dur) overlaps no block in bs/be[b0:b1] (sorted, disjoint): where a setup
    that must end by t + dur can start at the latest."""
    if dur <= 0:
        return t
    while True:
        i = _bisect_left(bs, b0, b1, t + dur) - 1  # the last block starting before t + dur
        if i >= b0 and be[i] > t:
            t = bs[i] - dur
            continue
        return t


@njit(cache=True)
def _bisect_left(a, lo, hi, x):
    """First index in a[lo:hi] (sorted) whose value is >= x (returned as an absolute index)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# ---- peak power cap ------------------------------------------------------------------------------------------------
# The power in use over time, as heuristics._Power keeps it: a step function of segments (pts: sorted segment starts
# from 0, the last segment runs on forever), puse (the placed operations' kW), pbase (the forecast base load) and
# pload = puse + pbase per segment, pn[0] segments in use. The same float operations in the same order as the Python
# scheme, so the same plans (tests/optimization/test_power_dispatch.py).

@njit(cache=True)
def _power_push(pts, pload, pn, pcap, p, t, dur, limit, perr):
    """Earliest start >= t where ``p`` kW fit under the cap for all of ``dur``; or, as soon as that start is known
    to end past ``limit``, some later start that ends past it too. -1 when it never fits (perr: the power, and the
    time after which it cannot fit)."""
    if p <= 0 or dur <= 0:
        return t
    n = pn[0]
    cap = pcap + 1e-9
    k = _bisect_right(pts, 0, n, t) - 1
    if k < 0:
        k = 0
    end = t + dur
    if end > limit:
        return t
    while k < n and pts[k] < end:
        if pload[k] + p > cap:
            if k + 1 == n:
                perr[0] = p
                perr[1] = pts[k]
                return -1
            t = pts[k + 1]
            end = t + dur
            if end > limit:
                return t
        k += 1
    return t


@njit(cache=True)
def _power_split(pts, puse, pbase, pload, pn, t):
    """Index of the segment starting at ``t`` (split there when needed)."""
    n = pn[0]
    k = _bisect_right(pts, 0, n, t) - 1
    if k >= 0 and pts[k] == t:
        return k
    src = k if k > 0 else 0
    u, b, ld = puse[src], pbase[src], pload[src]
    for q in range(n, k + 1, -1):
        pts[q] = pts[q - 1]
        puse[q] = puse[q - 1]
        pbase[q] = pbase[q - 1]
        pload[q] = pload[q - 1]
    pts[k + 1] = t
    puse[k + 1] = u
    pbase[k + 1] = b
    pload[k + 1] = ld
    pn[0] = n + 1
    return k + 1


@njit(cache=True)
def _power_add(pts, puse, pbase, pload, pn, t, dur, p):
    if dur <= 0:
        return
    a = _power_split(pts, puse, pbase, pload, pn, t)
    b = _power_split(pts, puse, pbase, pload, pn, t + dur)
    for k in range(a, b):
        puse[k] += p
        pload[k] = puse[k] + pbase[k]


@njit(cache=True)
def _fit(ts, te, tf, cnt, m, S, use_setups, est, dur, f, bs, be, b0, b1, as_, ae, a0, a1, p, pts, pload, pn, pcap,
         perr):
    """Earliest start >= est of an operation of family f and length dur in a gap of machine m's timeline; with
    ``p`` > 0 kW and a power profile (pts, ...), also under the peak cap (-1: never under it).

    bs/be[b0:b1]: the calendar blocks the operation may not overlap; as_/ae[a0:a1]: all of them (breaks too), which
    no setup may overlap: a setup takes working time on the machine, after the entries before the gap (the setup
    into this operation) and before the next operation (the setup out of it). f = -2: a maintenance window, which
    leaves working time after it for the setup between the operations around it (pinned ones, placed before)."""
    n = cnt[m]
    g = _bisect_right(ts[m], 0, n, est) - 1
    if g < 0:
        g = 0
    use = use_setups and f >= 0
    while True:
        lo = est
        if g > 0 and te[m, g - 1] > lo:
            lo = te[m, g - 1]
        if g < n:
            hi = ts[m, g]
            if dur == 0 and te[m, g] == hi:
                hi -= 1  # at hi it would go after that zero-length operation (_insert), not into this gap
            if hi - lo < dur:
                g += 1
                continue
        else:
            hi = BIG
        if use_setups and f == -2:  # a maintenance window: the setup between the operations around it stays possible
            k = g - 1
            while k >= 0 and tf[m, k] == -2:
                k -= 1
            k2 = g
            while k2 < n and tf[m, k2] == -2:
                k2 += 1
            if k >= 0 and k2 < n and tf[m, k] >= 0 and tf[m, k2] >= 0:
                su = S[m, tf[m, k], tf[m, k2]]
                if su > 0:  # in working time after the window (and any window before the next operation)
                    v = _push_back(as_, ae, a0, a1, ts[m, k2] - su, su)
                    if k2 > g and v < te[m, k2 - 1]:
                        g += 1
                        continue
                    if v < hi:
                        hi = v
        if use:
            k = g - 1
            while k >= 0 and tf[m, k] == -2:
                k -= 1
            if k >= 0 and tf[m, k] >= 0:
                su = S[m, tf[m, k], f]
                if su > 0:  # the setup in, in working time after the last entry before the gap
                    v = _push(as_, ae, a0, a1, te[m, g - 1], su) + su
                    if v > lo:
                        lo = v
            k = g
            while k < n and tf[m, k] == -2:
                k += 1
            if k < n and tf[m, k] >= 0:
                su = S[m, f, tf[m, k]]
                if su > 0:  # the next operation's setup out of this one, in working time before it
                    v = _push_back(as_, ae, a0, a1, ts[m, k] - su, su)
                    if k > g and v < te[m, k - 1]:  # not after the maintenance windows before it
                        g += 1
                        continue
                    if v < hi:
                        hi = v
        t = lo
        if lo + dur <= hi:
            if p > 0:
                # the calendar and the power in use, in turn until neither moves the start (a start the power
                # search gave back is under the cap, or ends past hi: searched again only when the calendar moved it)
                pushed = False
                while True:
                    t2 = _push(bs, be, b0, b1, t, dur)
                    if not (pushed and t2 == t):
                        t2 = _power_push(pts, pload, pn, pcap, p, t2, dur, hi, perr)
                        if t2 < 0:
                            return -1
                        pushed = True
                    if t2 == t:
                        break
                    t = t2
            else:
                t = _push(bs, be, b0, b1, t, dur)
            if t + dur <= hi:
                return t
        g += 1


@njit(cache=True)
def _insert(ts, te, tf, cnt, m, s, e, f):
    """Entry [s, e) into machine m's timeline, kept sorted by (start, end) as ``check.verify`` orders a machine: a
    zero-length operation goes before an entry that starts when it does. The gap search takes the previous entry's
    end as a gap's lower bound, so a zero-length operation sorted after a maintenance window (or an operation) that
    starts with it hid that entry: the next operation could start inside it."""
    n = cnt[m]
    i = _bisect_right(ts[m], 0, n, s)
    while i > 0 and ts[m, i - 1] == s and te[m, i - 1] > e:
        i -= 1
    for k in range(n, i, -1):
        ts[m, k] = ts[m, k - 1]
        te[m, k] = te[m, k - 1]
        tf[m, k] = tf[m, k - 1]
    ts[m, i] = s
    te[m, i] = e
    tf[m, i] = f
    cnt[m] = n + 1


@njit(cache=True)
def _prev_family(ts, tf, cnt, m, start):
    k = _bisect_right(ts[m], 0, cnt[m], start) - 1
    while k >= 0 and tf[m, k] == -2:
        k -= 1
    return tf[m, k] if k >= 0 else -1


@njit(cache=True)
def _place(i, m, s, el_ptr, el_m, el_d, fam, ts, te, tf, cnt, placed, end_of, out_m, out_s, out_order, n_placed,
           has_power, pw, pts, puse, pbase, pload, pn):
    """Operation i kept at (m, s) (pinned, or in the fixed prefix); returns the new count of placed operations."""
    d = 0
    for k in range(el_ptr[i], el_ptr[i + 1]):
        if el_m[k] == m:
            d = el_d[k]
    _insert(ts, te, tf, cnt, m, s, s + d, fam[i])
    if has_power:
        _power_add(pts, puse, pbase, pload, pn, s, d, pw[i])
    placed[i] = True
    end_of[i] = s + d
    out_m[i] = m
    out_s[i] = s
    out_order[n_placed] = i
    return n_placed + 1


@njit(cache=True)
def _power_stale(ready, n_ready, stale, m, s, e, p, pw, pts, pload, pn, pcap, el_ptr, el_m, el_d, fver, ft):
    """The ready operations to refresh after an operation of ``p`` kW went onto machine m at [s, e) (the profile
    already holds it) into ``stale``; returns their number. Those eligible on m (its timeline changed), and those
    with a fit (of nonzero power and length) that now exceeds the cap somewhere in [s, e), marked fver -2 (searched
    again from its old start): more power in use only removes feasible starts (heuristics._power_stale)."""
    n_stale = 0
    hot = p > 0 and e > s
    cap = pcap + 1e-9
    a = 0
    b = 0
    top = 0.0
    if hot:
        n = pn[0]
        a = _bisect_right(pts, 0, n, s) - 1
        b = _bisect_left(pts, a, n, e)
        top = pload[a]
        for k in range(a + 1, b):
            if pload[k] > top:
                top = pload[k]
    for r in range(n_ready):
        i = ready[r]
        pi = pw[i]
        hit = False
        if not (hot and pi > 0 and top + pi > cap):  # fits under the cap wherever the load rose
            for k in range(el_ptr[i], el_ptr[i + 1]):
                if el_m[k] == m:
                    hit = True
                    break
        else:
            for k in range(el_ptr[i], el_ptr[i + 1]):
                if el_m[k] == m:
                    hit = True
                elif el_d[k] > 0 and ft[k] < e and ft[k] + el_d[k] > s:
                    # the fit's interval overlaps [s, e): is it still under the cap where the load rose?
                    lo = s if s > ft[k] else ft[k]
                    hi = e if e < ft[k] + el_d[k] else ft[k] + el_d[k]
                    q = _bisect_right(pts, a, b, lo) - 1
                    while q < b and pts[q] < hi:
                        if pload[q] + pi > cap:
                            fver[k] = -2
                            hit = True
                            break
                        q += 1
        if hit:
            stale[n_stale] = i
            n_stale += 1
    return n_stale


@njit(cache=True, nogil=True)
def run(rule, atc_k, atc_k2, atc_work,
        el_ptr, el_m, el_d, mrank, fam, span, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, tail, job, due, has_due,
        weight, pin_m, pin_s, S, use_setups, pbar, sbar, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, cap,
        fix_m, fix_s, fix_order, win_m, win_s, win_e, mw_m, mw_want, mw_deadline, mw_dur, bias,
        pw, pcap, pts, puse, pbase, pload, pn, perr, deadline, stop, stop_token,
        out_m, out_s, out_order, out_wm, out_ws):
    """One plan by ``rule`` (RULE_CODES). Operations with fix_m >= 0 keep (fix_m, fix_s) (placed in fix_order);
    win_* are maintenance windows kept as they are; mw_* places new windows (when win_* is empty). Writes the
    machine and start of every operation into out_m / out_s, the placement order into out_order and the new windows'
    starts into out_ws (machines: out_wm). Returns the number of operations placed (< n: a cycle with pinned
    work), -1 when an operation's power never fits under the peak cap (perr: its kW and the time), -3 when
    ``deadline`` (a ``time.perf_counter()`` value; <= 0: none) passed before the plan was complete, or -4 when the
    solve was stopped: ``stop[0]`` set (read every 64 placements, by the thread or forked process that noticed the
    request first), or, with a deadline, the request of ``stop_token`` (> 0) set (read with the clock).

    pcap > 0: a peak power cap (pw: each operation's kW; pts ... pn: the power profile with the base load, room for
    two more segments per operation). A placement raises the power in use over its interval, which only removes
    feasible starts: a ready operation's fit whose interval misses it stays the earliest, and one that now exceeds
    the cap is searched again from its old start (fver -2), as heuristics._power_stale does in the Python scheme."""
    has_power = pcap > 0
    n = el_ptr.shape[0] - 1
    M = mrank.shape[0]
    ts = np.empty((M, cap), np.int64)
    te = np.empty((M, cap), np.int64)
    tf = np.empty((M, cap), np.int64)
    cnt = np.zeros(M, np.int64)
    version = np.zeros(M, np.int64)
    placed = np.zeros(n, np.bool_)
    end_of = np.zeros(n, np.int64)
    n_placed = 0
    for i in range(n):
        if pin_m[i] >= 0:
            n_placed = _place(i, pin_m[i], pin_s[i], el_ptr, el_m, el_d, fam, ts, te, tf, cnt, placed, end_of, out_m,
                              out_s, out_order, n_placed, has_power, pw, pts, puse, pbase, pload, pn)
    for r in range(fix_order.shape[0]):
        i = fix_order[r]
        if not placed[i]:
            n_placed = _place(i, fix_m[i], fix_s[i], el_ptr, el_m, el_d, fam, ts, te, tf, cnt, placed, end_of, out_m,
                              out_s, out_order, n_placed, has_power, pw, pts, puse, pbase, pload, pn)
    for w in range(win_m.shape[0]):
        _insert(ts, te, tf, cnt, win_m[w], win_s[w], win_e[w], -2)
    if win_m.shape[0] == 0:
        for w in range(mw_m.shape[0]):
            m = mw_m[w]
            d = mw_dur
            t = _fit(ts, te, tf, cnt, m, S, use_setups, mw_want[w], d, -2, ba_s, ba_e, ba_ptr[m], ba_ptr[m + 1],
                     bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1], 0.0, pts, pload, pn, pcap, perr)
            if mw_deadline >= 0 and t + d > mw_deadline:
                t = _fit(ts, te, tf, cnt, m, S, use_setups, 0, d, -2, ba_s, ba_e, ba_ptr[m], ba_ptr[m + 1], bn_s,
                         bn_e, bn_ptr[m], bn_ptr[m + 1], 0.0, pts, pload, pn, pcap, perr)
            _insert(ts, te, tf, cnt, m, t, t + d, -2)
            out_wm[w] = m
            out_ws[w] = t

    k_atc = atc_k if rule == 3 else 0.5
    # per ready operation: its earliest start from its predecessors, the chosen machine, start, completion, priority
    est = np.zeros(n, np.int64)
    rm = np.full(n, -1, np.int64)
    rs = np.zeros(n, np.int64)
    rc = np.zeros(n, np.int64)
    rp = np.zeros(n, np.float64)
    # per eligible (operation, machine) entry: the fit and the version of the machine's timeline it was computed on
    fver = np.full(el_m.shape[0], -1, np.int64)
    ft = np.zeros(el_m.shape[0], np.int64)
    remaining = np.zeros(n, np.int64)
    ready = np.empty(n, np.int64)
    n_ready = 0
    for i in range(n):
        if placed[i]:
            continue
        c = 0
        for k in range(pr_ptr[i], pr_ptr[i + 1]):
            if not placed[pr_a[k]]:
                c += 1
        remaining[i] = c
        if c == 0:
            ready[n_ready] = i
            n_ready += 1

    stale = np.empty(n, np.int64)
    n_stale = 0
    for r in range(n_ready):
        stale[n_stale] = ready[r]
        n_stale += 1
    while True:
        # refresh the stale ready operations: best machine by (completion, start, machine id), then the priority
        for r in range(n_stale):
            i = stale[r]
            if rm[i] < 0:
                e = release[i]
                for k in range(pr_ptr[i], pr_ptr[i + 1]):
                    v = end_of[pr_a[k]] + pr_lag[k]
                    if v > e:
                        e = v
                est[i] = e
            bc = BIG
            bt = BIG
            bm = -1
            fi = fam[i]
            sp = span[i]
            p = pw[i] if has_power else 0.0
            for k in range(el_ptr[i], el_ptr[i + 1]):
                m = el_m[k]
                d = el_d[k]
                if fver[k] != version[m]:
                    e = ft[k] if fver[k] == -2 else est[i]
                    if sp:
                        t = _fit(ts, te, tf, cnt, m, S, use_setups, e, d, fi, ba_s, ba_e, ba_ptr[m], ba_ptr[m + 1],
                                 bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1], p, pts, pload, pn, pcap, perr)
                    else:
                        t = _fit(ts, te, tf, cnt, m, S, use_setups, e, d, fi, bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1],
                                 bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1], p, pts, pload, pn, pcap, perr)
                    if t < 0:
                        return -1
                    fver[k] = version[m]
                    ft[k] = t
                t = ft[k]
                if t + d < bc or (t + d == bc and (t < bt or (t == bt and mrank[m] < mrank[bm]))):
                    bc = t + d
                    bt = t
                    bm = m
            rm[i] = bm
            rs[i] = bt
            rc[i] = bc
            d = bc - bt
            j = job[i]
            if rule == 1:
                rp[i] = d
            elif rule == 0:
                rp[i] = -tail[i]
            elif rule == 2:
                rp[i] = (due[j] if has_due[j] else np.inf) - tail[i] * 1e-6
            else:
                dj = due[j] if has_due[j] else 1e12
                slack = max(0.0, dj - tail[i] - bt)
                setup = 0
                if use_setups:
                    q = _prev_family(ts, tf, cnt, bm, bt)
                    if q >= 0 and fi >= 0:
                        setup = S[bm, q, fi]
                w = max(weight[j], 1e-6)
                p_eff = float(d) if atc_work == 0.0 else (1.0 - atc_work) * d + atc_work * tail[i]
                w *= bias[j]
                rp[i] = -((w / max(p_eff, 1.0)) * np.exp(-slack / (k_atc * pbar)) * np.exp(-setup / (atc_k2 * sbar)))
        n_stale = 0
        if n_ready == 0:
            break
        if (n_placed & 63) == 0:
            if stop[0] != 0:
                return -4
            if deadline > 0:
                with objmode(now="float64", halt="int64"):
                    now = time.perf_counter()
                    halt = stop_requested(stop_token) if stop_token > 0 else 0
                if halt != 0:
                    return -4
                if now > deadline:
                    return -3
        c_star = BIG
        for r in range(n_ready):
            if rc[ready[r]] < c_star:
                c_star = rc[ready[r]]
        # the candidate with the best priority, then the earliest completion, then the lowest index
        bi = -1
        bpos = -1
        for r in range(n_ready):
            i = ready[r]
            if rs[i] < c_star or rc[i] == c_star:
                if bi < 0 or rp[i] < rp[bi] or (rp[i] == rp[bi] and (rc[i] < rc[bi] or (rc[i] == rc[bi] and i < bi))):
                    bi = i
                    bpos = r
        i = bi
        m = rm[i]
        _insert(ts, te, tf, cnt, m, rs[i], rc[i], fam[i])
        version[m] += 1
        placed[i] = True
        end_of[i] = rc[i]
        out_m[i] = m
        out_s[i] = rs[i]
        out_order[n_placed] = i
        n_placed += 1
        n_ready -= 1
        ready[bpos] = ready[n_ready]
        if has_power:
            _power_add(pts, puse, pbase, pload, pn, rs[i], rc[i] - rs[i], pw[i])
            n_stale = _power_stale(ready, n_ready, stale, m, rs[i], rc[i], pw[i], pw, pts, pload, pn, pcap, el_ptr,
                                   el_m, el_d, fver, ft)
        else:
            for r in range(n_ready):
                if rm[ready[r]] == m:
                    stale[n_stale] = ready[r]
                    n_stale += 1
        for k in range(sc_ptr[i], sc_ptr[i + 1]):
            s = sc_b[k]
            if placed[s]:
                continue
            remaining[s] -= 1
            if remaining[s] == 0:
                ready[n_ready] = s
                n_ready += 1
                stale[n_stale] = s
                n_stale += 1
    return n_placed


class Tables:
    """A problem's arrays for :func:`run` (built once per problem from ``heuristics._static``'s index tables)."""

    def __init__(self, problem, static: tuple) -> None:
        (keys, idx, ops, job_of, n, preds, succs, tail, pbar, has_setups, sbar, fams, fam, setup_rows, _h,
         _lb) = static
        machines = [m.id for m in problem.machines]
        self.mids = machines
        self.mpos = {m: t for t, m in enumerate(machines)}
        mpos = self.mpos
        M = len(machines)
        order = sorted(range(M), key=lambda t: machines[t])
        self.mrank = np.empty(M, np.int64)
        self.mrank[order] = np.arange(M)
        el_ptr, el_m, el_d = [0], [], []
        load = np.ones(M, np.int64)
        for o in ops:
            for m in o.machines:
                el_m.append(mpos[m])
                el_d.append(o.durations[m])
                load[mpos[m]] += 1
            el_ptr.append(len(el_m))
        self.el_ptr = np.array(el_ptr, np.int64)
        self.el_m = np.array(el_m, np.int64)
        self.el_d = np.array(el_d, np.int64)
        self.load = load  # timeline rows: the machine's eligible operations + 1 (windows are added per call)
        self.fam = np.array(fam, np.int64)
        self.span = np.array([o.can_span_break for o in ops], np.bool_)
        self.release = np.array([j.release for j in job_of], np.int64)
        jobs = list(problem.jobs)
        jpos = {j.id: t for t, j in enumerate(jobs)}
        self.jobs = jobs
        self.job = np.array([jpos[j.id] for j in job_of], np.int64)
        # each job's first operation, and n (operations are grouped by job in op_keys)
        self.job_first = np.r_[np.flatnonzero(np.r_[True, self.job[1:] != self.job[:-1]]), n].astype(np.int64)
        self.due = np.array([float(j.due) if j.due is not None else 0.0 for j in jobs], np.float64)
        self.has_due = np.array([j.due is not None for j in jobs], np.bool_)
        self.weight = np.array([float(j.weight) for j in jobs], np.float64)
        self.pr_ptr = np.array(np.cumsum([0] + [len(p) for p in preds]), np.int64)
        self.pr_a = np.array([a for p in preds for a, _ in p], np.int64)
        self.pr_lag = np.array([lag for p in preds for _, lag in p], np.int64)
        self.sc_ptr = np.array(np.cumsum([0] + [len(s) for s in succs]), np.int64)
        self.sc_b = np.array([b for s in succs for b in s], np.int64)
        self.tail = np.array(tail, np.int64)
        self.pin_m = np.array([mpos[o.pinned_machine] if o.pinned_machine is not None and o.pinned_start is not None
                               else -1 for o in ops], np.int64)
        self.pin_s = np.array([o.pinned_start if o.pinned_start is not None else 0 for o in ops], np.int64)
        F = max(1, len(fams))
        self.S = np.zeros((M, F, F), np.int64)
        if has_setups:
            for m, rows in setup_rows.items():
                self.S[mpos[m]] = np.array(rows, np.int64).reshape(F, F)
        self.use_setups = bool(has_setups)
        self.pbar, self.sbar = float(pbar), float(sbar)
        for name, span in (("ba", True), ("bn", False)):
            ptr, bs, be = [0], [], []
            for mach in problem.machines:
                for d in mach.blocking(span):
                    bs.append(d.start)
                    be.append(d.end)
                ptr.append(len(bs))
            setattr(self, name + "_ptr", np.array(ptr, np.int64))
            setattr(self, name + "_s", np.array(bs, np.int64))
            setattr(self, name + "_e", np.array(be, np.int64))
        self.n = n
        self.keys = keys
        self.idx = idx
        self.ops = ops
        self.dur = {(i, mpos[m]): d for i, o in enumerate(ops) for m, d in o.durations.items()}
        r = problem.risk
        # the failure-risk penalty per unit of work on each machine (policy "penalty")
        self.risk_rate = np.zeros(M)
        if r is not None and r.policy == "penalty":
            for m in r.risky_machines():
                self.risk_rate[mpos[m]] = r.penalty_per_unit * r.risks[m]
        mm = problem.maintenance_machines()
        self.mw_m = np.array([mpos[m] for m in mm], np.int64)
        self.mw_dur = int(r.window_duration) if mm else 0
        self.mw_deadline = int(r.deadline) if mm and r.deadline is not None else -1
        want = max(0, r.deadline - r.window_duration) if mm and r.deadline is not None else 0
        self.mw_want = np.full(len(mm), want, np.int64)
        self.ones = np.ones(len(jobs), np.float64)
        # a peak power cap: each operation's kW and the base load's segments (heuristics._Power)
        en = problem.energy
        self.pcap = float(en.peak_cap_kw) if en is not None and en.peak_cap_kw else 0.0
        self.pw = np.array([float(o.power_kw) for o in ops], np.float64)
        base = [float(b) for b in en.base_load_kw] if en is not None and en.base_load_kw else [0.0]
        self.pbase0 = np.array(base, np.float64)
        self.pts0 = np.array([k * (en.period if en is not None else 1) for k in range(len(base))], np.int64)
        self.no_fix = np.full(n, -1, np.int64)
        self.empty = np.zeros(0, np.int64)

    def run(self, rule: str, atc_k: float, atc_k2: float, atc_work: float, fix_m=None, fix_s=None, fix_order=None,
            windows: tuple | None = None, bias=None, deadline: float | None = None,
            stop=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:  # noqa: ANN001 - a heuristics.Stop
        """One plan: (machine index per operation, start per operation, placement order, maintenance windows as
        (machine index, start, end)). ``windows`` (arrays of machine indices, starts, ends) are kept as they are;
        None places the failure-risk windows anew. Raises ValueError when not every operation could be placed,
        ``heuristics.DispatchTimeout`` past ``deadline`` and ``heuristics.DispatchStopped`` once ``stop`` is set."""
        n = self.n
        if fix_m is None:
            fix_m, fix_s, fix_order = self.no_fix, self.no_fix, self.empty
        if windows is None:
            win_m = win_s = win_e = self.empty
            mw_m = self.mw_m
        else:
            win_m, win_s, win_e = windows
            mw_m = self.empty
        cap = int(self.load.max()) + len(win_m) + len(mw_m)
        out_m = np.full(n, -1, np.int64)
        out_s = np.zeros(n, np.int64)
        out_order = np.zeros(n, np.int64)
        out_wm = np.zeros(len(mw_m), np.int64)
        out_ws = np.zeros(len(mw_m), np.int64)
        room = len(self.pts0) + 2 * n + 2 if self.pcap > 0 else 1  # each placement adds at most two segments
        pts = np.zeros(room, np.int64)
        pbase = np.zeros(room, np.float64)
        pn = np.zeros(1, np.int64)
        if self.pcap > 0:
            k = len(self.pts0)
            pts[:k], pbase[:k], pn[0] = self.pts0, self.pbase0, k
        puse = np.zeros(room, np.float64)
        pload = puse + pbase
        perr = np.zeros(2, np.float64)
        done = run(RULE_CODES[rule], float(atc_k), float(atc_k2), float(atc_work), self.el_ptr, self.el_m, self.el_d,
                   self.mrank, self.fam, self.span, self.release, self.pr_ptr, self.pr_a, self.pr_lag, self.sc_ptr,
                   self.sc_b, self.tail, self.job, self.due, self.has_due, self.weight, self.pin_m, self.pin_s, self.S,
                   self.use_setups, self.pbar, self.sbar, self.ba_ptr, self.ba_s, self.ba_e, self.bn_ptr, self.bn_s,
                   self.bn_e, cap, fix_m, fix_s, fix_order, win_m, win_s, win_e, mw_m, self.mw_want,
                   self.mw_deadline, self.mw_dur, self.ones if bias is None else bias, self.pw, self.pcap, pts, puse,
                   pbase, pload, pn, perr, float(deadline or 0.0), NO_STOP if stop is None else stop.flag,
                   0 if stop is None else stop.token, out_m, out_s, out_order, out_wm, out_ws)
        if done == -4:
            from optimization.heuristics import DispatchStopped

            raise DispatchStopped(f"the solve was stopped before dispatching rule {rule!r} finished its plan")
        if done == -3:
            from optimization.heuristics import DispatchTimeout

            raise DispatchTimeout(f"dispatching rule {rule!r} did not finish its plan of {n} operations within the "
                                  "time limit")
        if done == -1:
            raise ValueError(f"peak power cap too low: an operation of {perr[0]:g} kW never fits under "
                             f"{self.pcap:g} kW with the base load after t={int(perr[1])}")
        if done != n:
            raise ValueError("dispatching could not place every operation (precedence with a pinned operation?)")
        if windows is None:
            wins = [(int(m), int(s), int(s) + self.mw_dur) for m, s in zip(out_wm, out_ws, strict=True)]
        else:
            wins = [(int(m), int(s), int(e)) for m, s, e in zip(win_m, win_s, win_e, strict=True)]
        return out_m, out_s, out_order, wins


# ---- sequence local search (big plans, weighted tardiness) --------------------------------------------------------
# The plan is a machine assignment and, per machine, a sequence (doubly linked: mprev / mnext, mfirst / mlast).
# ``_retime`` gives every operation its earliest start under those sequences (job predecessors with lags, release,
# the machine predecessor plus the setup, calendar blocks and maintenance windows, pinned starts); ``local_run``
# moves operations of late jobs earlier in their machine's sequence or onto another eligible machine and keeps the
# best move when it lowers the objective.

@njit(cache=True)
def _off_windows(ws, we, w0, w1, t):
    """t, or past the maintenance windows ws/we[w0:w1] (sorted by start) that t lies strictly inside: where a
    zero-length operation may be. ``_push`` lets it be anywhere, as it may in a calendar downtime, but inside a
    window ``check.verify`` refuses it (and the dispatching's gap search keeps it out)."""
    for k in range(w0, w1):
        if ws[k] < t < we[k]:
            t = we[k]
    return t


@njit(cache=True)
def _retime(n, mach, mprev, mnext, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups, span,
            ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned, pin_s, start, end, order, indeg):
    """Semi-active times of the sequences into start / end; False on a cycle or a broken pin. ba / bn: the calendar
    blocks merged with the maintenance windows (``heuristics._merged_blocks``); wn: the windows alone."""
    cnt = 0
    for i in range(n):
        indeg[i] = pr_ptr[i + 1] - pr_ptr[i] + (1 if mprev[i] >= 0 else 0)
        if indeg[i] == 0:
            order[cnt] = i
            cnt += 1
    k = 0
    while k < cnt:
        i = order[k]
        k += 1
        t = release[i]
        for r in range(pr_ptr[i], pr_ptr[i + 1]):
            v = end[pr_a[r]] + pr_lag[r]
            if v > t:
                t = v
        m = mach[i]
        q = mprev[i]
        if q >= 0:
            v = end[q]
            if use_setups and fam[q] >= 0 and fam[i] >= 0:
                su = S[m, fam[q], fam[i]]
                if su > 0:  # the setup, in working time (no downtime, no maintenance window) after q
                    v = _push(bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1], v, su) + su
            if v > t:
                t = v
        if span[i]:
            t = _push(ba_s, ba_e, ba_ptr[m], ba_ptr[m + 1], t, dur[i])
        else:
            t = _push(bn_s, bn_e, bn_ptr[m], bn_ptr[m + 1], t, dur[i])
        if dur[i] == 0:
            t = _off_windows(wn_s, wn_e, wn_ptr[m], wn_ptr[m + 1], t)
        if pinned[i]:
            if t > pin_s[i]:
                return False
            t = pin_s[i]
        start[i] = t
        end[i] = t + dur[i]
        for r in range(sc_ptr[i], sc_ptr[i + 1]):
            b = sc_b[r]
            indeg[b] -= 1
            if indeg[b] == 0:
                order[cnt] = b
                cnt += 1
        b = mnext[i]
        if b >= 0:
            indeg[b] -= 1
            if indeg[b] == 0:
                order[cnt] = b
                cnt += 1
    return cnt == n


@njit(cache=True)
def _value(n, end, mach, dur, job_first, due, has_due, weight, w_t, w_mk, rate, jt):
    """w_t * weighted tardiness + w_mk * makespan + the risk penalty; jt gets each job's weighted tardiness."""
    wt = 0.0
    mk = 0
    for t in range(job_first.shape[0] - 1):
        c = 0
        for i in range(job_first[t], job_first[t + 1]):
            if end[i] > c:
                c = end[i]
        if c > mk:
            mk = c
        jt[t] = 0.0
        if has_due[t] and c > due[t]:
            jt[t] = weight[t] * (c - due[t])
            wt += jt[t]
    risk = 0.0
    for i in range(n):
        risk += rate[mach[i]] * dur[i]
    return w_t * wt + w_mk * mk + risk


@njit(cache=True)
def _unlink(i, m, mprev, mnext, mfirst, mlast):
    p = mprev[i]
    q = mnext[i]
    if p >= 0:
        mnext[p] = q
    else:
        mfirst[m] = q
    if q >= 0:
        mprev[q] = p
    else:
        mlast[m] = p
    mprev[i] = -1
    mnext[i] = -1


@njit(cache=True)
def _link_before(i, q, m, mprev, mnext, mfirst, mlast):
    """Insert i before q on machine m (q < 0: at the end)."""
    if q < 0:
        p = mlast[m]
        mprev[i] = p
        mnext[i] = -1
        if p >= 0:
            mnext[p] = i
        else:
            mfirst[m] = i
        mlast[m] = i
        return
    p = mprev[q]
    mprev[i] = p
    mnext[i] = q
    mprev[q] = i
    if p >= 0:
        mnext[p] = i
    else:
        mfirst[m] = i


@njit(cache=True)
def _ready(i, release, pr_ptr, pr_a, pr_lag, end):
    t = release[i]
    for r in range(pr_ptr[i], pr_ptr[i + 1]):
        v = end[pr_a[r]] + pr_lag[r]
        if v > t:
            t = v
    return t


@njit(cache=True)
def _try(x, m_to, q, d_to, mach, mprev, mnext, mfirst, mlast, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam,
         S, use_setups, span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned, pin_s, job_first,
         due, has_due, weight, w_t, w_mk, rate, tstart, tend, order, indeg, jt):
    """The value of the plan with operation x moved before q on machine m_to (q < 0: at the end), lasting d_to there
    (inf on a cycle or a broken pin); x goes back where it was."""
    n = mach.shape[0]
    m0 = mach[x]
    d0 = dur[x]
    n0 = mnext[x]
    _unlink(x, m0, mprev, mnext, mfirst, mlast)
    mach[x] = m_to
    dur[x] = d_to
    _link_before(x, q, m_to, mprev, mnext, mfirst, mlast)
    v = np.inf
    if _retime(n, mach, mprev, mnext, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups, span,
               ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned, pin_s, tstart, tend, order, indeg):
        v = _value(n, tend, mach, dur, job_first, due, has_due, weight, w_t, w_mk, rate, jt)
    _unlink(x, m_to, mprev, mnext, mfirst, mlast)
    mach[x] = m0
    dur[x] = d0
    _link_before(x, n0, m0, mprev, mnext, mfirst, mlast)
    return v


@njit(cache=True)
def _other_machines(x, ready, depth, best, mach, mprev, mnext, mfirst, mlast, dur, end, el_ptr, el_m, el_d, release,
                    pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups, span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s,
                    bn_e, wn_ptr, wn_s, wn_e, pinned, pin_s, job_first, due, has_due, weight, w_t, w_mk, rate, tstart,
                    tend, order, indeg, jt):
    """Tries operation x at ``depth`` places on each other eligible machine, from one place before the first
    operation there that ends after x is ready. Returns (best value, machine, insert-before operation, duration);
    machine -1 when no try beats ``best``. The plan is left as it was."""
    m0 = mach[x]
    b_m = -1
    b_q = -1
    b_d = 0
    for e in range(el_ptr[x], el_ptr[x + 1]):
        m2 = el_m[e]
        if m2 == m0:
            continue
        q = mfirst[m2]
        while q >= 0 and end[q] <= ready:
            q = mnext[q]
        if q >= 0 and mprev[q] >= 0 and not pinned[mprev[q]]:
            q = mprev[q]  # also one place before
        for _ in range(depth):
            v = _try(x, m2, q, el_d[e], mach, mprev, mnext, mfirst, mlast, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr,
                     sc_b, fam, S, use_setups, span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned,
                     pin_s, job_first, due, has_due, weight, w_t, w_mk, rate, tstart, tend, order, indeg, jt)
            if v < best - 1e-9:
                best = v
                b_m = m2
                b_q = q
                b_d = el_d[e]
            if q < 0:
                break
            q = mnext[q]
    return best, b_m, b_q, b_d


@njit(cache=True, nogil=True)
def local_run(n_moves, depth, mach, mprev, mnext, mfirst, mlast, dur, start, end, el_ptr, el_m, el_d, release,
              pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups, span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e,
              wn_ptr, wn_s, wn_e, pinned, pin_s, job, job_first, due, has_due, weight, w_t, w_mk, rate, value, tstart,
              tend, order, indeg, jt):
    """``n_moves`` moves from the current plan (mach, sequences, start / end, its ``value``): each picks a late job
    (chance by its weighted tardiness), one of its operations, and tries it up to ``depth`` places earlier on its
    machine and at ``depth`` places on each other eligible machine (around the operations that end after it is
    ready); the best try that lowers the value is kept. Returns (new value, moves kept)."""
    n = mach.shape[0]
    kept = 0
    _value(n, end, mach, dur, job_first, due, has_due, weight, w_t, w_mk, rate, jt)
    for _ in range(n_moves):
        total = 0.0
        for t in range(jt.shape[0]):
            total += jt[t]
        if total <= 0.0:
            break
        r = np.random.random() * total
        t = 0
        while t < jt.shape[0] - 1 and (jt[t] <= 0.0 or r >= jt[t]):
            r -= jt[t]
            t += 1
        lo = job_first[t]
        hi = job_first[t + 1]
        i = lo + np.random.randint(0, hi - lo)
        if pinned[i]:
            continue
        m0 = mach[i]
        p0 = mprev[i]
        d0 = dur[i]
        ready = _ready(i, release, pr_ptr, pr_a, pr_lag, end)
        best = value
        b_m = -1
        b_q = -1
        b_d = 0
        # earlier on its own machine: before its 1st, 2nd, ... machine predecessor
        q = p0
        k = 0
        while q >= 0 and k < depth and not pinned[q] and end[q] > ready:
            v = _try(i, m0, q, d0, mach, mprev, mnext, mfirst, mlast, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b,
                     fam, S, use_setups, span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned,
                     pin_s, job_first, due, has_due, weight, w_t, w_mk, rate, tstart, tend, order, indeg, jt)
            if v < best - 1e-9:
                best = v
                b_m = m0
                b_q = q
                b_d = d0
            q = mprev[q]
            k += 1
        # another eligible machine
        v, m2, q2, d2 = _other_machines(i, ready, depth, best, mach, mprev, mnext, mfirst, mlast, dur, end, el_ptr,
                                        el_m, el_d, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups,
                                        span, ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned,
                                        pin_s, job_first, due, has_due, weight, w_t, w_mk, rate, tstart, tend, order,
                                        indeg, jt)
        if m2 >= 0:
            best, b_m, b_q, b_d = v, m2, q2, d2
        if b_m >= 0:
            _unlink(i, m0, mprev, mnext, mfirst, mlast)
            mach[i] = b_m
            dur[i] = b_d
            _link_before(i, b_q, b_m, mprev, mnext, mfirst, mlast)
            _retime(n, mach, mprev, mnext, dur, release, pr_ptr, pr_a, pr_lag, sc_ptr, sc_b, fam, S, use_setups, span,
                    ba_ptr, ba_s, ba_e, bn_ptr, bn_s, bn_e, wn_ptr, wn_s, wn_e, pinned, pin_s, start, end, order, indeg)
            value = best
            kept += 1
        # the job weights of the current plan (the tries overwrote them)
        _value(n, end, mach, dur, job_first, due, has_due, weight, w_t, w_mk, rate, jt)
    return value, kept
