"""A longer fuzzing pass over SFAI's API than the one in ``make test`` (tests/serving/test_fuzz.py).

    .venv/bin/python benchmarks/fuzz_api.py --examples 100 --seeds 0 1 2

Builds a throw-away tenant (every module, one key per role, the demo models) in a temporary directory and
runs schemathesis over every operation of the OpenAPI document as each role and without a key: positive and
negative cases, checking for 5xx, undocumented status codes and content types, bodies that do not match the
schema, and errors outside the one JSON error shape. Prints a table and exits 1 if anything was found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serving.fuzzing import ROLES, build_app, fuzz_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="cases per operation, role and mode")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--positive-only", action="store_true", help="only requests the schema allows")
    args = parser.parse_args()
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="sfai-fuzz-") as tmp:
        app, keys = build_app(Path(tmp))
        head = ("seed", "role", "ops", "cases", "2xx", "4xx", "5xx", "failures", "s")
        print("{:>4} {:<10} {:>4} {:>6} {:>5} {:>5} {:>4} {:>8} {:>6}".format(*head))
        for seed in args.seeds:
            for role in [*ROLES, None]:
                t0 = time.perf_counter()
                r = fuzz_app(
                    Path(tmp), roles=[role], examples=args.examples, seed=seed, app=app, keys=keys,
                    negative=not args.positive_only,
                )
                by = {c: sum(n for s, n in r.statuses.items() if s // 100 == c) for c in (2, 4, 5)}
                print(f"{seed:>4} {role or 'no key':<10} {r.operations:>4} {r.cases:>6} {by[2]:>5} {by[4]:>5} "
                      f"{by[5]:>4} {len(r.failures):>8} {time.perf_counter() - t0:>6.1f}", flush=True)
                if r.failures:
                    print(r.describe_failures())
                failures += len(r.failures)
        app.state.platform.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
