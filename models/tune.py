"""Hyperparameter search for a model family with Ray Tune (``sfai tune MODEL --trials N``).

Each family's train module declares ``SEARCH_SPACE`` as plain data -- ``{"key": ("choice", [...])}``,
``("uniform", lo, hi)`` or ``("loguniform", lo, hi)`` -- and ``train_and_score(input_path, dataset, config)
-> float`` (lower is better) using the same training loop as ``sfai train``. Ray runs locally, or on the
cluster at ``ray_address`` / ``SFAI_RAY_ADDRESS``. Every fixed value (``--set``) and the search space's points are
checked (``models/config.py``) before Ray starts. Ray Tune writes its trial folders under
``$SFAI_HOME/ray_results/tune-<family>/`` (with ``settings``; else Ray's default, ``~/ray_results``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from models.families import get_family
from serving.errors import InvalidInput
from serving.settings import ray_address as configured_ray_address

MAX_TRIALS = 10_000
# the families whose train module declares a SEARCH_SPACE (kept here, torch-free, for ``sfai tune --help``; a test
# checks it against the train modules). defect and energy train with their shipped configs only.
TUNABLE = ("failure", "rul")
# what each family's trial score is (its train_and_score), as the result names it
SCORE_MEANING = {
    "failure": "1 - average precision of the out-of-fold failure probabilities (lower is better)",
    "rul": "RMSE in cycles on the held-out engines' cuts (lower is better)",
}
MAX_SEED = 2**32 - 1  # what the search algorithm's random generator accepts


def _representative(space: dict) -> dict:
    """One point of the search space (a choice's first value, a range's low end): with ``fixed`` over it, what
    ``check_config`` validates before Ray starts."""
    out = {}
    for key, spec in space.items():
        kind, *args = spec
        out[key] = list(args[0])[0] if kind == "choice" else args[0]
    return out


def _short_error(err: BaseException | None) -> str:
    """A trial's error in one line: the last line of Ray's text (which embeds the whole traceback)."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else type(err).__name__
    return line if len(line) <= 300 else line[:300] + "..."


def ray_space(space: dict) -> dict:
    from ray import tune

    out = {}
    for key, spec in space.items():
        kind, *args = spec
        if kind == "choice":
            out[key] = tune.choice(list(args[0]))
        elif kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        else:
            raise ValueError(f"unknown search-space kind {kind!r} for {key!r}")
    return out


def tune(
    family_name: str,
    input_path: Path | str,
    dataset: str,
    trials: int,
    *,
    settings=None,  # noqa: ANN001 - serving.settings.Settings; Ray's scratch goes under its home
    ray_address: str | None = None,
    fixed: dict | None = None,
    seed: int = 0,
    cpus_per_trial: float = 1.0,
) -> dict:
    """Run ``trials`` Ray Tune trials over the family's search space; returns ``{"best_config",
    "best_score", "metric", "trials": [{"config", "score"}...]}``. ``fixed`` overrides every trial
    (e.g. fewer epochs)."""
    family = get_family(family_name)
    if family.name not in TUNABLE:
        raise InvalidInput(f"model {family_name!r} has no search space to tune; tunable: {', '.join(TUNABLE)}")
    family.check_dataset(dataset)
    input_path = Path(input_path).resolve()
    if not input_path.is_file():
        raise InvalidInput(f"{input_path}: no such file")
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise InvalidInput(f"--trials must be a whole number from 1 to {MAX_TRIALS}, got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    fixed = dict(fixed or {})
    family.check_config(fixed)  # unknown keys and bad values: one line now, not a traceback in every Ray trial
    train_mod = family.load("train")
    space = getattr(train_mod, "SEARCH_SPACE", None)
    scorer = getattr(train_mod, "train_and_score", None)
    if not space or scorer is None:
        raise InvalidInput(f"model {family_name!r} has no search space to tune; tunable: {', '.join(TUNABLE)}")
    # a key given with --set is not searched: its trials had reported sampled values that were never used, and
    # spent the samples on it (data scientist's audit)
    space = {k: v for k, v in space.items() if k not in fixed}
    if not space:
        raise InvalidInput(f"every key {family_name!r} searches ({', '.join(train_mod.SEARCH_SPACE)}) "
                           "is fixed with --set: nothing is left to tune; drop one of them, or train with these "
                           "values (sfai train)")
    family.check_config({**_representative(space), **fixed})  # the search space with the fixed values
    preflight = getattr(train_mod, "preflight", None)
    if preflight is not None:  # a file every trial would refuse: one line now, not an error per trial
        preflight(input_path, {**_representative(space), **fixed})

    import ray
    from ray import tune as rtune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    address = ray_address or configured_ray_address()
    module_name = family.train_module

    def trainable(config: dict) -> dict:
        import importlib

        mod = importlib.import_module(module_name)
        return {"score": float(mod.train_and_score(input_path, dataset, {**config, **fixed}))}

    storage = None
    if settings is not None:
        storage = str((Path(settings.home) / "ray_results").resolve())
    with _quiet():
        started = False
        if not ray.is_initialized():
            if address:
                from serving.settings import check_ray_address

                check_ray_address(address)
            # "local" starts our own Ray even when another one runs on this machine
            kwargs = {"address": address} if address else {"address": "local", "num_cpus": max(1, os.cpu_count() or 1)}
            ray.init(
                include_dashboard=False, log_to_driver=False, configure_logging=False, logging_level="ERROR", **kwargs
            )
            started = True
        try:
            tuner = rtune.Tuner(
                rtune.with_resources(trainable, {"cpu": cpus_per_trial}),
                param_space=ray_space(space),
                tune_config=rtune.TuneConfig(
                    metric="score",
                    mode="min",
                    num_samples=trials,
                    search_alg=BasicVariantGenerator(random_state=seed),
                ),
                run_config=ray.tune.RunConfig(name=f"tune-{family_name}", storage_path=storage, verbose=0,
                                              callbacks=_progress(trials)),
            )
            results = tuner.fit()
            rows = [{"config": {**r.config, **fixed}, "score": r.metrics.get("score")} for r in results if r.metrics]
            errors = sorted({_short_error(r.error) for r in results if r.error})
            if not any(r.metrics and "score" in r.metrics for r in results):
                raise RuntimeError(f"no tuning trial finished ({len(results)} failed): {'; '.join(errors)}")
            best = results.get_best_result()
            failed = sum(1 for r in results if r.error)
        finally:
            if started:
                ray.shutdown()
    trial = {k: v for k, v in getattr(train_mod, "TRIAL_SETTINGS", {}).items() if k not in fixed}
    recommend = getattr(train_mod, "tuned_config", lambda best, fixed: best)
    out = {
        "family": family_name,
        "metric": SCORE_MEANING.get(family.name, "score (lower is better)"),
        "best_config": recommend({**best.config, **fixed}, fixed),
        "best_score": float(best.metrics["score"]),
        "trials": rows,
    }
    if trial:  # the trials trained a cut-down model: their scores are its, not the full training's
        out["trial_settings"] = trial
        out["best_trial_config"] = {**best.config, **fixed, **trial}
    if errors:  # the trials that failed, each reason once
        out["failed_trials"] = failed
        out["errors"] = errors
    return out


def _progress(trials: int) -> list:
    """At a terminal, a bar of the trials finished, with the best score so far (it had shown nothing but Ray's
    configuration box for minutes: data scientist's audit); elsewhere (a log file, a batch job) a plain
    ``progress:`` line per trial (stdout is the result's)."""
    from ray.tune import Callback

    from models.training import progress_line

    at_terminal = sys.stderr.isatty()

    class TrialBar(Callback):
        def __init__(self) -> None:
            self.bar = None
            if at_terminal:
                from tqdm import tqdm

                self.bar = tqdm(total=trials, desc="tuning", unit="trial", file=sys.stderr)
            self.best, self.done = None, 0

        def _step(self) -> None:
            self.done += 1
            if self.bar is None:
                best = "" if self.best is None else f", best {self.best:.4f}"
                progress_line(f"tuning: {self.done}/{trials} trials{best}", every=0)
                return
            self.bar.update(1)
            if self.best is not None:
                self.bar.set_postfix(best=f"{self.best:.4f}")

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
            score = (trial.last_result or {}).get("score")
            if score is not None and (self.best is None or score < self.best):
                self.best = score
            self._step()

        def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
            self._step()

        def on_experiment_end(self, trials, **info) -> None:  # noqa: ANN001
            if self.bar is not None:
                self.bar.close()

    return [TrialBar()]


@contextlib.contextmanager
def _quiet():  # noqa: ANN202
    """stdout carries the result only: Ray Tune prints its configuration box (and any progress) with print(), so
    that goes to stderr; a failed trial's full traceback (Ray's log) is summed up in one line instead."""
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        tune_log.setLevel(level)
