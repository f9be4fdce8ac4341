"""``sfai schedule``: solve a scheduling file and print one JSON line (mounted by the platform CLI)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

schedule_app = typer.Typer(help="Production scheduling (OR-Tools CP-SAT).", no_args_is_help=True,
                           add_completion=False)


class Format(StrEnum):
    jsplib = "jsplib"
    fjsp = "fjsp"
    json = "json"


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=1)


@schedule_app.command("solve")
def solve_cmd(
    file: Annotated[Path, typer.Argument(help="problem file")],
    fmt: Annotated[Format, typer.Option("--format", help="jsplib | fjsp | json")] = Format.json,
    time_limit: Annotated[float, typer.Option("--time-limit", help="seconds")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", help="CP-SAT workers")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    objective: Annotated[str, typer.Option("--objective", help="makespan|tardiness|energy|weighted|lex")] = "",
    output: Annotated[Path | None, typer.Option("--output", help="full schedule JSON")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="auto|full|lns")] = "auto",
    weights: Annotated[str, typer.Option(
        "--weights", help="objective weighted: TERM=W,... (terms tardiness, makespan, energy)")] = "",
    order: Annotated[str, typer.Option("--order", help="objective lex: TERM,... by priority")] = "",
) -> None:
    """Solve FILE and print one JSON line with status, makespan, lower_bound and wall_s."""
    from optimization.io import load  # here, not at the top: OR-Tools and numba take half a second to import, and
    from optimization.service import make_params, solve_document  # every other sfai command would pay it

    try:
        problem = load(file, fmt.value)
        params = make_params(problem, time_limit_s=time_limit, workers=workers, seed=seed,
                             objective=objective or None, strategy=strategy,
                             weights=_weights(weights) if weights else None,
                             order=[t.strip() for t in order.split(",")] if order else None)
        line, doc = solve_document(problem, params)
        if output is not None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps(doc, default=str))
            except OSError as e:
                raise ValueError(f"cannot write {output}: {e.strerror or e}") from None
    except ValueError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - the contract: one error line, never a traceback
        _fail(f"{type(e).__name__}: {e}")
    sys.stdout.write(json.dumps(line, default=str) + "\n")
    for n in doc["notes"]:  # valid, but likely a slip in the file
        typer.echo(f"note: {n['message']}", err=True)
    for r in doc["no_plan_reasons"]:  # INFEASIBLE or UNKNOWN: why, for the person at the terminal
        typer.echo(f"no plan: {r['message']}", err=True)


@schedule_app.callback()
def _main() -> None:
    """Production scheduling."""


if __name__ == "__main__":
    schedule_app()


def _weights(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        term, sep, value = part.partition("=")
        try:
            out[term.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--weights takes TERM=NUMBER,...; got {part.strip()!r}") from None
        if not sep:
            raise ValueError(f"--weights takes TERM=NUMBER,...; got {part.strip()!r}")
    return out
