"""Generator of a realistic flexible shop plan (default: 500 orders x 10 operations = 5,000 ops, 50 machines).

Model of the shop (time unit: minute):
- 10 work centres of 5 machines; each operation can run on 2-3 machines of one centre, the faster machines
  10-30% quicker; processing times 10-60 min.
- 6 product families; sequence-dependent setups 5 + 3*|a-b| min (the triangle inequality holds), per machine.
- Calendar: three shifts a day with 30-min breaks at 04:00, 12:00 and 20:00; a quarter of the operations may run
  through a break (unattended); machine m has a 4-hour planned maintenance on day 1 + (m mod 3).
- Orders released over the first two days; due = release + tightness * (sum of mean processing times) with
  tightness in [1.5, 4]; weights 1, 2 or 3 (priority customers).

    python benchmarks/gen_shop.py --jobs 500 --ops 10 --machines 50 --seed 1 --output plan.json
"""

from __future__ import annotations

import argparse
import json
import random

from optimization.io import parse_jsplib, problem_to_dict
from optimization.problem import Downtime, Job, Machine, Operation, SchedulingProblem, SetupTimes

DAY = 1440


def generate(jobs: int = 500, ops: int = 10, machines: int = 50, seed: int = 1, days: int = 8,
             families: int = 6, tightness: tuple[float, float] = (1.5, 4.0)) -> SchedulingProblem:
    rng = random.Random(seed)
    centres = max(1, machines // 5)
    mids = [f"M{i:02d}" for i in range(machines)]
    groups = [mids[c::centres] for c in range(centres)]
    mach = []
    for i, m in enumerate(mids):
        cal = [Downtime(d * DAY + b, d * DAY + b + 30, "break") for d in range(days) for b in (240, 720, 1200)]
        md = 1 + i % 3
        cal.append(Downtime(md * DAY + 360, md * DAY + 600, "maintenance"))
        mach.append(Machine(m, tuple(cal)))
    speed = {m: rng.uniform(0.7, 1.0) for m in mids}
    out_jobs = []
    for j in range(jobs):
        fam = f"F{rng.randrange(families)}"
        release = rng.randrange(0, 2 * DAY)
        route = []
        work = 0.0
        for o in range(ops):
            g = groups[rng.randrange(centres)]
            elig = rng.sample(g, k=min(len(g), rng.choice((2, 2, 3))))
            base = rng.randint(10, 60)
            durs = {m: max(1, round(base * speed[m] / 0.85)) for m in elig}
            work += sum(durs.values()) / len(durs)
            route.append(Operation(id=str(o), durations=durs, family=fam, power_kw=round(rng.uniform(5, 40), 1),
                                   can_span_break=rng.random() < 0.25))
        due = release + int(rng.uniform(*tightness) * work)
        out_jobs.append(Job(id=f"J{j:04d}", operations=tuple(route), release=release, due=due,
                            weight=float(rng.choice((1, 1, 2, 3)))))
    setups = {(f"F{a}", f"F{b}"): 5 + 3 * abs(a - b) for a in range(families) for b in range(families) if a != b}
    return SchedulingProblem(jobs=tuple(out_jobs), machines=tuple(mach), name=f"shop{jobs * ops}_s{seed}",
                             setups=SetupTimes(matrix=setups))


def random_job_shop(jobs: int, machines: int, seed: int) -> SchedulingProblem:
    """A job shop drawn like Taillard's (1993) instances: every job visits every machine once in a random order,
    processing times uniform in 1..99. Not Taillard's own generator (his seeds give his published instances);
    same sizes and distribution, for the size classes without shared instances (20x20, 30x20, 50x15, ...)."""
    rng = random.Random(seed)
    lines = [f"{jobs} {machines}"]
    for _ in range(jobs):
        order = list(range(machines))
        rng.shuffle(order)
        lines.append(" ".join(f"{m} {rng.randint(1, 99)}" for m in order))
    return parse_jsplib("\n".join(lines), name=f"rand{jobs}x{machines}s{seed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--ops", type=int, default=10)
    ap.add_argument("--machines", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()
    p = generate(a.jobs, a.ops, a.machines, a.seed)
    with open(a.output, "w") as f:
        json.dump(problem_to_dict(p), f)
    print(f"wrote {a.output}: {len(p.jobs)} jobs, {p.n_operations} operations, {len(p.machines)} machines")


if __name__ == "__main__":
    main()
