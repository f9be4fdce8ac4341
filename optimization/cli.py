"""``sfai schedule``: solve a scheduling file and print one JSON line (mounted by the platform CLI).

A JSON file may also be a solve request as ``POST /v1/scheduling/solve`` takes it (``{"problem": {...},
"maintenance": ..., "remaining_life": ..., "energy_forecast": ..., "objective": ...}``): it is solved as the API
solves it for the tenant (``--tenant``), with the tenant's subscriptions, champion models and stored features."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from click.core import ParameterSource

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
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="problem file, or (JSON) a solve request as the API takes it")],
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
    tenant: Annotated[str | None, typer.Option(
        "--tenant", "-t", help="the tenant whose modules, models and features a solve request uses (default: the "
        "local tenant); with a plain JSON problem, solve it as that tenant's request")] = None,
) -> None:
    """Solve FILE and print one JSON line with status, makespan, lower_bound and wall_s."""
    from optimization.io import load  # here, not at the top: OR-Tools and numba take half a second to import, and
    from optimization.service import make_params, solve_document  # every other sfai command would pay it
    from serving.errors import SfaiError

    try:
        request = _solve_request(file) if fmt is Format.json else None
        if request is None and tenant is not None:
            if fmt is not Format.json:
                raise ValueError("--tenant takes a JSON problem or solve request (--format json)")
            request = {"problem": {"name": file.stem, **_json_problem(file)}}  # its name, as load() gives it
        if request is not None:
            doc = _solve_as_tenant(ctx, request, tenant, time_limit=time_limit, workers=workers, seed=seed,
                                   strategy=strategy, objective=objective, weights=weights, order=order)
            line = {k: doc[k] for k in SUMMARY}
        else:
            problem = load(file, fmt.value)
            params = make_params(problem, time_limit_s=time_limit, workers=workers, seed=seed,
                                 objective=objective or None, strategy=strategy,
                                 weights=_weights(weights) if weights else None,
                                 order=_order(order))
            line, doc = solve_document(problem, params)
        if output is not None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps(doc, default=str))
            except OSError as e:
                raise ValueError(f"cannot write {output}: {e.strerror or e}") from None
    except ValueError as e:
        _fail(str(e))
    except SfaiError as e:  # the API's refusals of a solve request (422, 404 naming the field), as the API words them
        _fail(e.message)
    except Exception as e:  # noqa: BLE001 - the contract: one error line, never a traceback
        _fail(f"{type(e).__name__}: {e}")
    sys.stdout.write(json.dumps(line, default=str) + "\n")
    for n in doc["notes"]:  # valid, but likely a slip in the file (or left out for want of a module)
        typer.echo(f"note: {n['message']}", err=True)
    for n in _linked_notes(doc):
        typer.echo(f"note: {n}", err=True)
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


def _order(text: str) -> list[str] | None:
    return [t.strip() for t in text.split(",")] if text else None


# the printed line's keys, a solve request's as a problem file's (optimization.service.solve_document's line)
SUMMARY = ("status", "makespan", "lower_bound", "wall_s", "instance", "n_jobs", "n_machines", "n_operations",
           "objective", "objective_values", "violations")
# the request's solver fields the command line's options replace where given
SOLVER_OPTIONS = (("time_limit", "time_limit_s"), ("workers", "workers"), ("seed", "seed"),
                  ("strategy", "strategy"))
OBJECTIVE_OPTIONS = (("objective", "objective"), ("weights", "weights"), ("order", "order"))
LINKED_MODELS = ("maintenance_model", "remaining_life_model", "energy_model")


def _read_json(file: Path) -> object:
    from serving.errors import parse_json

    try:
        raw = file.read_bytes()
    except OSError as e:
        raise ValueError(f"{file}: cannot read file ({e.strerror or e})") from None
    return parse_json(raw.removeprefix(b"\xef\xbb\xbf"), str(file), unique_keys=True)


def _solve_request(file: Path) -> dict | None:
    """The file's document where it is a solve request (an object with ``problem``, a field no problem has), else
    None: a problem file, or one ``optimization.io.load`` refuses in its own words."""
    try:
        data = _read_json(file)
    except Exception:  # noqa: BLE001 - unreadable or not JSON: load() says why, as it always has
        return None
    return data if isinstance(data, dict) and "problem" in data else None


def _json_problem(file: Path) -> dict:
    """A plain JSON problem's document (``optimization.io.load`` checks it first, in its own words)."""
    from optimization.io import load

    load(file, "json")
    return _read_json(file)


def _solve_as_tenant(ctx: typer.Context, body: dict, tenant: str | None, **options: object) -> dict:
    """The full answer to ``body`` (a ``POST /v1/scheduling/solve`` request) as the API gives it to ``tenant``: its
    fields checked by the API's schema (a background job's time limit, up to an hour), the linked fields run on the
    tenant's champion models and stored features for the modules it holds now, the rest left out with the API's
    ``needs_module`` notes and ``linked.ignored``. The command line's solver options replace the request's where
    given (``--objective``, ``--weights`` and ``--order`` together)."""
    from pydantic import ValidationError

    from serving.cli.common import database
    from serving.cli.features import _tenant
    from serving.handlers import validation_message
    from serving.scheduling import solve_now
    from serving.schemas.scheduling import JobRequest
    from serving.tenancy import active_subscriptions, get_tenant

    try:
        checked = JobRequest.model_validate(body)
    except ValidationError as e:
        raise ValueError(f"invalid solve request: {validation_message(e.errors())}") from None
    request = checked.model_dump()

    def given(option: str) -> bool:
        return ctx.get_parameter_source(option) not in (ParameterSource.DEFAULT, None)

    for option, field in SOLVER_OPTIONS:
        if given(option) or field not in checked.model_fields_set:
            request[field] = options[option]
    if any(given(option) for option, _ in OBJECTIVE_OPTIONS):
        request.update(objective=options["objective"] or None, order=_order(options["order"]),
                       weights=_weights(options["weights"]) if options["weights"] else None)
    db = database()
    who = get_tenant(db, _tenant(tenant))
    modules = set(active_subscriptions(db, who.id))
    return solve_now(_linked(request, who, modules), modules)


def _linked(request: dict, tenant, modules: set[str]) -> dict:  # noqa: ANN001 - a TenantInfo
    """``request`` with its linked fields run as the API runs them (``serving.scheduling.check_linked`` and
    ``run_linked``, less what only a server has: the partner modules' quotas and usage log, the tenant's scoring
    turns): checked first, then the failure model's risks, the rul model's lives and the energy model's load on the
    tenant's plant calendar, one after another."""
    from serving.calendar_store import plant_calendar
    from serving.cli.common import database, settings
    from serving.platform import Platform
    from serving.scheduling import check_linked, run_linked

    checked = check_linked(request, modules, settings().max_batch_records)
    if checked is None:
        return request
    platform = Platform.build(settings(), database())  # the API's model cache and feature stores
    try:
        return run_linked(platform, tenant.name, checked, lambda: plant_calendar(platform.db, tenant.id))
    finally:
        platform.close()


def _linked_notes(doc: dict) -> list[str]:
    """What the person at the terminal should read in ``linked`` beyond the answer's notes: what was ignored that no
    ``needs_module`` note names (an energy objective solved for the default one), and the linked models' warnings
    (stale readings, the meter's gaps) and notes (a plan past the forecast, the peak cap's period)."""
    linked = doc.get("linked") or {}
    noted = {n.get("module") for n in doc["notes"] if n.get("type") == "needs_module"}
    out = [i for i in linked.get("ignored", []) if not any(i.endswith(f"(needs the '{m}' module)") for m in noted)]
    for key in LINKED_MODELS:
        used = linked.get(key) or {}
        out += [*used.get("warnings", []), *(used[k] for k in ("note", "peak_cap_note") if used.get(k))]
    return out
