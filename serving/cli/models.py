"""``sfai train``, ``sfai predict`` and ``sfai models``: the data scientist's loop.

Training imports torch (the family's train module); prediction runs ONNX Runtime only.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from models.config import MAX_SEED as CONFIG_MAX_SEED
from models.tune import MAX_SEED, MAX_TRIALS, TUNABLE  # Ray is imported only when a tuning run starts
from serving.cli.common import check_output, database, emit_json, info, settings
from serving.cli.features import _tenant
from serving.errors import InvalidInput

if TYPE_CHECKING:
    from models.families import Family
    from models.registry import ModelRegistry, ModelVersion
    from serving.settings import Settings

models_app = typer.Typer(help="Registered models: list, promote, roll back.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (default: the local tenant)")]
VERSION_MAX = 2**31 - 1  # a version is a database INTEGER


def _registry(tenant: str | None):  # noqa: ANN202
    from models.registry import ModelRegistry

    return ModelRegistry(database(), settings().home, _tenant(tenant), default_tenant=settings().default_tenant)


def _parse_sets(values: list[str]) -> dict:
    out = {}
    for v in values:
        key, sep, raw = v.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set expects key=value, got {v!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def train(
    model: Annotated[str, typer.Argument(help="failure, rul, defect or energy")],
    dataset: Annotated[str, typer.Option(help="ai4i, cmapss, secom or steel-energy")],
    input: Annotated[Path, typer.Option("--input", "-i", help="training file")],
    tenant: TenantOpt = None,
    seed: Annotated[int, typer.Option(help="random seed", min=0, max=CONFIG_MAX_SEED)] = 0,
    epochs: Annotated[
        int | None, typer.Option(help="maximum epochs (early stopping may end sooner)", min=1)
    ] = None,
    set_: Annotated[list[str], typer.Option("--set", help="config override key=value (repeatable)")] = [],  # noqa: B006
    alias: Annotated[
        str | None, typer.Option(help="champion or challenger (default: champion if first, else challenger)")
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
) -> None:
    """Train a model on a file, export it to ONNX and register it; prints one JSON line.

    Every option and --set value is checked before training starts: a refusal is one line naming it."""
    from models.families import get_family

    family = get_family(model)
    family.check_dataset(dataset)
    check_alias(alias)
    if not input.is_file():
        raise InvalidInput(f"{input}: no such file")
    reg = _registry(tenant)
    config = _parse_sets(set_)
    config["seed"] = seed
    if epochs is not None:
        config["epochs"] = epochs
    mv = train_and_register(settings(), reg, family, input, dataset, config, alias=alias, track=not no_track)
    emit_json(
        {
            "model": mv.name,
            "version": mv.version,
            "aliases": list(mv.aliases),
            "tenant": reg.tenant,
            "metrics": mv.metrics,
        }
    )


def check_alias(alias: str | None) -> None:
    """``--alias``, checked before training (not after it, when the model would have to be thrown away)."""
    from models.registry import ALIASES

    if alias is not None and alias not in ALIASES:
        raise InvalidInput(f"--alias {alias!r}: expected {' or '.join(ALIASES)} (or leave it out)")


def train_and_register(
    s: Settings,
    reg: ModelRegistry,
    family: Family,
    input: Path,
    dataset: str,
    config: dict,
    *,
    alias: str | None = None,
    track: bool = True,
) -> ModelVersion:
    """Train ``family`` on ``input``, export it to ONNX and register it in ``reg`` (MLflow run too if ``track``):
    what ``sfai train`` does, shared with the demo models (``models/demo.py``). Returns the ModelVersion, whose
    metrics include ``train_seconds``."""
    from models.tracking import Tracker

    name = family.registry_name(input)
    check_alias(alias)
    family.check_config(config)  # before the training module (and torch) is imported
    reg.check_next_free(name)  # another deployment's model where this version would go: said before training
    mod = family.load("train")
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="sfai-train-") as out,
        Tracker(s, f"{reg.tenant}/{name}", enabled=track, run_name=f"{name} {input.name}", tags={
            "sfai.tenant": reg.tenant, "sfai.model": name, "sfai.family": family.name, "sfai.module": family.module,
            "sfai.dataset": dataset, "sfai.input": input.name}) as tracker,
    ):
        tracker.log_params({"family": family.name, "dataset": dataset, "input": str(input), **config})
        metrics = mod.train(input, dataset, Path(out), config=config, tracker=tracker)
        train_s = time.perf_counter() - t0
        metrics = {**metrics, "train_seconds": round(train_s, 1)}
        tracker.log_metrics(metrics)
        mv = reg.register(name, family.module, Path(out), metrics=metrics, mlflow_run_id=tracker.run_id, alias=alias)
        tracker.log_input(input, mv.manifest.get("data_hash"))  # the run's dataset, by its data hash
        # the registered copy: its manifest carries the version, the tenant and the registered name
        tracker.register(f"{reg.tenant}.{name}", mv.path, mv.aliases[0] if mv.aliases else "challenger")
    return mv


def _horizon_steps(value: str | int) -> int:
    """``--horizon``, refused in the energy model's own words (the API's too), not in Typer's, as a usage error:
    ``Invalid value for '--horizon': "horizon" must be a whole number of 15-minute steps, 1-96 (one day ahead); got
    0``, before any file is read."""
    from models.energy.predict import check_horizon

    try:
        return check_horizon(value)
    except InvalidInput as e:
        raise typer.BadParameter(e.message) from None


def predict(
    model: Annotated[str, typer.Argument(help="failure, rul, defect or energy")],
    dataset: Annotated[str, typer.Option(help="ai4i, cmapss, secom or steel-energy")],
    input: Annotated[Path, typer.Option("--input", "-i", help="rows to score")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write")],
    tenant: TenantOpt = None,
    start: Annotated[str | None, typer.Option(help="energy: first forecast origin, YYYY-MM-DD")] = None,
    horizon: Annotated[int, typer.Option(help="energy: steps of 15 minutes per forecast, 1-96", metavar="STEPS",
                                         parser=_horizon_steps)] = 96,
    recent_failure_rate: Annotated[float | None, typer.Option(
        help="defect: the line's current share of failed wafers (0.065 for 6.5 %); default: the failure rate of the "
             "last 50 training wafers before each wafer")
    ] = None,
    threshold: Annotated[float | None, typer.Option(
        help="failure, defect: flag a row at or above this probability (0-1) instead of the model's own threshold "
             "(sfai models list shows it)")
    ] = None,
    recall_target: Annotated[float | None, typer.Option(
        help="defect: flag at the highest threshold that caught at least this share of failing wafers (0-1) in "
             "validation, instead of the model's own threshold; says that point's precision and flag rate (sfai "
             "models show lists them)")
    ] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="defect: add columns after the contract's: top_measurements (contributions to the defect "
                          "log-odds, + raises the risk), top_measurement_values (JSON), defect_logit, baseline_logit, "
                          "baseline_probability, median_wafer_probability, explained_share, measurements_missing")
    ] = False,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", help="defect, with --explain: measurements listed per wafer (default: the model's, 5)", min=1,
        max=590)
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="a registered version instead of the champion", min=1, max=VERSION_MAX)
    ] = None,
    model_name: Annotated[str | None, typer.Option(
        "--model", help="the registered model to use, e.g. rul-fd001 (default: the one the file's name points to, "
                        "else the family's newest champion); as the API's \"model\"")] = None,
) -> None:
    """Score a file with the champion model (ONNX Runtime); writes OUT.csv and prints one JSON line.

    Failure and defect rows stream through in chunks (any file size), on Ray Data when SFAI_RAY_ADDRESS is set."""
    import sys

    from models.families import get_family
    from models.registry import find_champion, other_champions
    from serving.batch import score_file

    family = get_family(model)
    family.check_dataset(dataset)
    if recent_failure_rate is not None and family.name != "defect":
        raise InvalidInput(f"--recent-failure-rate is an option of the defect model, not of {family.name}")
    if threshold is not None:
        if family.name not in ("failure", "defect"):
            raise InvalidInput(f"--threshold is an option of the failure and defect models, not of {family.name}")
        from serving.predictions import check_threshold

        threshold = check_threshold(threshold)
    for flag, given in (("--recall-target", recall_target is not None), ("--explain", explain),
                        ("--top-k", top_k is not None)):
        if given and family.name != "defect":
            raise InvalidInput(f"{flag} is an option of the defect model, not of {family.name}")
    if recall_target is not None and threshold is not None:
        raise InvalidInput("give --threshold or --recall-target, not both: each sets the decision threshold")
    if top_k is not None and not explain:
        raise InvalidInput("--top-k sets how many measurements --explain lists: add --explain")
    if not input.is_file():
        raise InvalidInput(f"{input}: no such file")
    check_output(output, f"{family.name}.csv")  # before the model is loaded; a missing folder is not created
    if output.exists() and output.samefile(input):  # it had replaced the rows with the predictions, silently
        raise InvalidInput(f"--output {output} is the input file: give another file name, e.g. "
                           f"{output.with_name(output.stem + '_' + family.name + '.csv')}")
    settings().refuse_state_file(output)
    reg = _registry(tenant)
    if model_name is not None:
        from models.registry import find_named

        wanted = model_name.strip().lower()
        ours = wanted == family.name or wanted.startswith(f"{family.name}-")
        if version is not None and ours and wanted in reg.names():
            mv = reg.get(wanted, version=version)  # a version, whether or not the model has a champion
        else:
            mv = find_named(reg, family.name, wanted)  # its champion; or it names the family's models
            if version is not None:
                mv = reg.get(mv.name, version=version)
        named = mv.name
    else:
        named = family.registry_name(input)  # rul-fd002 for test_FD002.txt
        mv = find_champion(reg, family.name, named, version)
    from serving.runtime import check_checksum

    check_checksum(mv.path / "model.onnx", mv.sha256)  # the registry's record, as the API checks it (ModelCache)
    fallback = named != family.name and mv.name != named  # another subset's model: its regimes and scales differ
    train_it = (f"sfai train {family.name} --dataset {dataset} --input train_{named.split('-')[-1].upper()}.txt"
                f"{reg.tenant_option()}")
    if named == family.name and mv.name != named and model_name is None:  # the file names no subset
        others = other_champions(reg.list(), family.name, mv.name)
        if others:  # the newest champion answers: say which, and that another subset's model may be the one meant
            info(f"warning: {input.name} names no C-MAPSS subset (FD001..FD004 in its name); scoring with "
                 f"{mv.name}, the newest {family.name} champion. This tenant also has {', '.join(others)}: name the "
                 f"model of this file's engines with --model (e.g. --model {others[0]})")
    if fallback:
        info(f"warning: {input.name} names the C-MAPSS subset {named.split('-')[-1].upper()}, which has no trained "
             f"model ({named}); scoring with {mv.name}. Train it first: {train_it}")
    if recall_target is not None:
        from models.defect.predict import threshold_for_recall

        point = threshold_for_recall(mv.manifest, recall_target)
        threshold = point["threshold"]
        info(f"note: recall target {recall_target:g}: threshold {threshold:.6g}; in validation it flagged "
             f"{point['flag_rate']:.1%} of wafers and caught {point['recall']:.1%} of failures, "
             f"{point['precision']:.1%} of flagged wafers failing (pooled held-out wafers: a line whose failure "
             "rate differs flags otherwise)")
    t0 = time.perf_counter()
    try:
        report = score_file(
            family.name,
            mv.path,
            input,
            dataset,
            output,
            options={"start": start, "horizon": horizon, "recent_failure_rate": recent_failure_rate,
                     "threshold": threshold, **({"explain": True, "top_k": top_k} if explain else {})},
            threads=os.cpu_count() or 1,
            progress=sys.stderr.isatty(),
        )
    except InvalidInput as e:
        if not fallback or "out of range" not in e.message:
            raise
        # FD002/FD004 fly six operating conditions: their readings lie far outside a one-condition model's range
        raise InvalidInput(f"{input.name} cannot be scored with {mv.name}, trained on another C-MAPSS subset: "
                           f"{e.message.split(': a unit or column mix-up')[0]}. Train {named} first: {train_it}"
                           ) from None
    for note in report["notes"]:
        info(f"note: {note}")
    for line in report.get("warnings", []):
        info(f"warning: {line}")
    emit_json(
        {
            "output": str(output),
            "rows": report["rows"],
            "model": mv.name,
            "version": mv.version,
            "engine": report["engine"],
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )


@models_app.command("list")
def models_list(tenant: TenantOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models: name, version, aliases, when registered (UTC), key metrics; a header line at a terminal
    (--json: also the MLflow run id)."""
    reg = _registry(tenant)
    rows = reg.list()
    if not rows:  # stdout stays empty (or [] with --json) for scripts
        info(f"no models registered for tenant {reg.tenant!r}: train one with "
             f"'sfai train MODEL --dataset DATASET --input FILE{reg.tenant_option()}'")
    if as_json:
        emit_json(
            [
                {
                    "name": m.name,
                    "version": m.version,
                    "module": m.module,
                    "aliases": list(m.aliases),
                    "metrics": m.metrics,
                    "mlflow_run_id": m.mlflow_run_id,
                    "created_at": m.created_at,
                }
                for m in rows
            ]
        )
        return
    if rows and sys.stdout.isatty():  # a person reading: what the columns are (a script's pipe gets the rows only)
        typer.echo("NAME\tVERSION\tALIASES\tREGISTERED (UTC)\tMETRICS")
    for m in rows:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in _key_metrics(m.name, m.metrics).items())
        typer.echo(f"{m.name}\tv{m.version}\t{','.join(m.aliases) or '-'}\t{m.created_at:%Y-%m-%d %H:%M}\t{metrics}")


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="model name, e.g. defect or rul-fd001")],
    version: Annotated[
        int | None, typer.Option(help="a version (default: the champion)", min=1, max=VERSION_MAX)
    ] = None,
    tenant: TenantOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    top: Annotated[int, typer.Option(help="global importance: features listed", min=1, max=590)] = 15,
) -> None:
    """One version in detail: its metrics and threshold; for a defect model also the validation operating points
    (threshold -> recall, precision, share of wafers flagged: how to choose a threshold for a recall target) and
    the global importance of its measurements (mean |contribution| to the defect log-odds on the training wafers,
    + where higher values raise the risk)."""
    reg = _registry(tenant)
    mv = reg.get(name, version=version)
    manifest = mv.manifest
    card = model_card(mv, manifest, top)
    if as_json:
        emit_json(card)
        return
    when = f"{mv.created_at:%Y-%m-%d %H:%M}"
    typer.echo(f"{mv.name} v{mv.version} ({','.join(mv.aliases) or 'no alias'}), registered {when} UTC")
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in _key_metrics(mv.name, mv.metrics).items())
    typer.echo(f"metrics: {metrics or '-'}")
    if "threshold" in card:
        typer.echo(f"threshold: {card['threshold']:.6g}")
    if "drift_prior" in card:
        typer.echo(f"recent failure rate (drift prior): {card['drift_prior']}")
    points = card.get("operating_points")
    if points:
        typer.echo(f"\noperating points ({points['source']}; {points['wafers']} wafers, {points['failures']} "
                   "failures):")
        typer.echo("THRESHOLD\tRECALL\tPRECISION\tFLAGGED")
        shipped = points["shipped"]
        rows = [*points["table"], {**shipped, "recall_target": None}]
        for p in sorted(rows, key=lambda r: -r["threshold"]):
            mark = "\t<- shipped threshold" if p["recall_target"] is None else ""
            typer.echo(f"{p['threshold']:.4g}\t{p['recall']:.1%}\t{p['precision']:.1%}\t{p['flag_rate']:.1%}{mark}")
        typer.echo("for a recall target: sfai predict defect ... --recall-target 0.8 flags at the highest threshold "
                   "that reached it (or --threshold T with a threshold from this table)")
    elif mv.name.startswith("defect"):
        typer.echo("operating points: none (trained without validation, n_splits=0, or before 2026-12)")
    importance = card.get("global_importance")
    if importance:
        typer.echo(f"\nglobal importance ({importance['units']}; {importance['data']}):")
        typer.echo("RANK\tFEATURE\tMEAN |CONTRIBUTION|\tSHARE\tHIGHER VALUES")
        for r in importance["features"]:
            typer.echo(f"{r['rank']}\t{r['feature']}\t{r['mean_abs_contribution']:.4f}\t{r['share']:.1%}\t"
                       f"{'raise the risk' if r['higher_raises_risk'] else 'lower the risk'}")


def model_card(mv, manifest: dict, top: int = 15) -> dict:  # noqa: ANN001
    """What ``sfai models show`` prints, as data (``--json``; the quality status endpoint gives the same parts)."""
    card: dict = {"name": mv.name, "version": mv.version, "aliases": list(mv.aliases), "metrics": mv.metrics,
                  "created_at": mv.created_at}
    if isinstance(manifest.get("threshold"), int | float):
        card["threshold"] = manifest["threshold"]
    if manifest.get("family") == "defect":
        drift = manifest.get("drift")
        card["drift_prior"] = (f"used: logit p = {drift['coef'][0]:.3f} x network logit + {drift['coef'][1]:.3f} x "
                               f"logit(rate) + {drift['coef'][2]:.3f}; overall rate {drift['prior']:.4f}, window "
                               f"{drift['window']} wafers" if drift else "not used")
        from models.defect.predict import validation_summary

        card.update(validation_summary(manifest, top))
    return card


# the metrics `sfai models list` shows per family (--json and MLflow have them all: a defect model records 22, and
# the table had printed every one of them; data scientist's audit)
KEY_METRICS = {
    "failure": ("val_roc_auc", "val_average_precision", "val_f1", "threshold", "train_seconds"),
    "rul": ("val_rmse", "val_rmse_sd", "val_nasa_per_engine", "train_seconds"),
    "defect": ("val_roc_auc", "val_balanced_accuracy", "val_balanced_accuracy_nested", "threshold", "train_seconds"),
    "energy": ("val_p50_mae", "val_mae_ratio_vs_last_week", "val_coverage_p10_p90", "train_seconds"),
}


def _key_metrics(name: str, metrics: dict) -> dict:
    """The family's key metrics that the version recorded, in that order; every numeric one for a model of no known
    family, or one that recorded none of them."""
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    keys = [k for k in KEY_METRICS.get(name.split("-")[0], ()) if k in numeric]
    return {k: numeric[k] for k in keys} if keys else numeric


def _sync(reg, name: str) -> None:  # noqa: ANN001
    """Mirror the aliases into MLflow's registry (best effort: the SFAI registry is the source of truth). A model
    none of whose versions was tracked is left alone (MLflow is not even imported)."""
    versions = {m.version: m for m in reg.list(name)}
    if not any(m.mlflow_run_id for m in versions.values()):
        return
    targets = {}
    for alias in ("champion", "challenger"):
        v = reg.alias(name, alias)
        targets[alias] = None if v is None else (v, versions[v].mlflow_run_id if v in versions else None)
    try:
        from models.tracking import sync_aliases

        for note in sync_aliases(settings(), f"{reg.tenant}.{name}", targets):
            info(f"note: {note}")
    except Exception as e:  # noqa: BLE001
        said = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        info(f"warning: MLflow's aliases of {reg.tenant}.{name} were not moved ({said}); SFAI serves its own "
             "champion, but models:/...@champion in MLflow may name another version: once MLflow answers, "
             f"'sfai models promote {name} --version <the champion>' sets them again")


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="model name, e.g. failure or rul-fd001")],
    version: Annotated[
        int | None, typer.Option(help="version to promote (default: the challenger)", min=1, max=VERSION_MAX)
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Make a version the champion (serving switches to it); prints 'name version', and on stderr what changed.
    Without --version it promotes the challenger, unless that one was champion until the current one replaced it
    (running promote twice would put the older model back): roll back for that."""
    reg = _registry(tenant)
    before = reg.alias(name, "champion") if name in reg.names() else None
    mv = reg.promote(name, version)
    _sync(reg, name)
    _changed(reg, name, before, mv.version)
    for line in promotion_warnings(reg, mv, before):
        info(f"warning: {line}")
    typer.echo(f"{mv.name}\t{mv.version}")


def promotion_warnings(reg, mv, before: int | None) -> list[str]:  # noqa: ANN001
    """What a promotion loses that its callers may rely on (defect): the drift prior, which reads the callers'
    recent_failure_rate (a model without it answers from the measurements alone and says the rate was ignored),
    and validation (n_splits=0: no validation metrics nor operating points; the threshold is the file's failure
    rate). Said, not refused: the promotion may be meant (a quick model for a demo)."""
    if not mv.name.startswith("defect"):
        return []
    try:
        new = mv.manifest
        old = reg.get(mv.name, version=before).manifest if before is not None and before != mv.version else None
    except Exception:  # noqa: BLE001 - a damaged or missing file: serving says so on the next prediction
        return []
    out = []
    if not new.get("drift"):
        lost = f" (version {before} had it)" if old is not None and old.get("drift") else ""
        out.append(f"{mv.name} version {mv.version} does not use the line's recent failure rate{lost}: callers that "
                   "send recent_failure_rate are answered from the measurements alone, with a warning in each "
                   "answer saying the rate was ignored (trained without test times, with n_splits=0, or the rate "
                   "did not help in validation)")
    if "val_roc_auc" not in (new.get("metrics") or {}):
        out.append(f"{mv.name} version {mv.version} was trained without validation (n_splits=0): it has no "
                   "validation metrics or operating points (sfai predict --recall-target refuses it), and its "
                   "threshold is the training file's failure rate")
    return out


def _changed(reg, name: str, before: int | None, now: int) -> None:  # noqa: ANN001
    after = reg.alias(name, "challenger")
    was = "unchanged" if before == now else f"was version {before}" if before is not None else "none before"
    info(f"{name}: champion version {now} ({was}); challenger "
         f"{'none' if after is None else f'version {after}'}")


@models_app.command("rollback")
def models_rollback(name: Annotated[str, typer.Argument(help="model name")], tenant: TenantOpt = None) -> None:
    """Undo the last change of champion: the champion before it again (the current one becomes challenger);
    prints 'name version'. Each rollback steps one champion further back, until there is no earlier one."""
    reg = _registry(tenant)
    before = reg.alias(name, "champion") if name in reg.names() else None
    mv = reg.rollback(name)
    _sync(reg, name)
    _changed(reg, name, before, mv.version)
    typer.echo(f"{mv.name}\t{mv.version}")


def tune(
    model: Annotated[str, typer.Argument(help=f"{' or '.join(TUNABLE)} (the models with a search space)")],
    dataset: Annotated[str, typer.Option(help="ai4i, cmapss, secom or steel-energy")],
    input: Annotated[Path, typer.Option("--input", "-i", help="training file")],
    trials: Annotated[int, typer.Option(help="number of trials", min=1, max=MAX_TRIALS)] = 8,
    seed: Annotated[int, typer.Option(help="random seed", min=0, max=MAX_SEED)] = 0,
    set_: Annotated[list[str], typer.Option("--set", help="fixed config key=value (repeatable)")] = [],  # noqa: B006
) -> None:
    """Search hyperparameters with Ray Tune (local Ray, or the cluster at SFAI_RAY_ADDRESS); prints the best
    config as JSON. Train with it: sfai train MODEL ... --set key=value. Every --set value is checked before Ray
    starts; Ray writes its trial folders under $SFAI_HOME/ray_results/tune-MODEL/."""
    from models.families import get_family
    from models.tune import tune as run_tune

    family = get_family(model)
    family.check_dataset(dataset)
    result = run_tune(family.name, input, dataset, trials, settings=settings(), seed=seed,
                      fixed=_parse_sets(set_) or None)
    result["train_command"] = train_command(family.name, dataset, input, result["best_config"])
    if "best_trial_config" in result:  # the trials were cut down (RUL: one fold, one member): how to redo the best
        result["trial_command"] = train_command(family.name, dataset, input, result.pop("best_trial_config"))
        result["note"] = (f"each trial trained with {json.dumps(result['trial_settings'])} to be quick, so best_score "
                          "is that cut-down model's; train_command trains the full model with the best values "
                          "(its validation differs), trial_command reproduces the best trial")
    emit_json(result)


def train_command(family: str, dataset: str, input: Path, config: dict) -> str:
    """``sfai train`` with ``config`` as ``--set`` options, each value as ``--set`` reads it back, quoted for a
    POSIX shell: the best config of a tuning run, ready to run."""
    sets = [shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in sorted(config.items())]
    return " ".join(["sfai", "train", family, "--dataset", dataset, "--input", shlex.quote(str(input)),
                     *(a for s in sets for a in ("--set", s))])
