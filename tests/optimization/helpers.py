"""Small synthetic problems for the scheduling tests."""

from __future__ import annotations

import contextlib
import signal

from optimization.problem import Job, Machine, Operation, SchedulingProblem


def op(oid: str, **durs: int) -> Operation:
    return Operation(id=oid, durations=durs)


def simple_problem(**kw) -> SchedulingProblem:
    """Two jobs, two machines: J1 = A(M1,3) -> B(M2,2); J2 = C(M2,4) -> D(M1,1)."""
    jobs = (
        Job("J1", (op("A", M1=3), op("B", M2=2)), due=5),
        Job("J2", (op("C", M2=4), op("D", M1=1)), due=6),
    )
    return SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")), name="simple", **kw)


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail with ``TimeoutError`` instead of hanging when the body runs longer than ``seconds`` (main thread)."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
