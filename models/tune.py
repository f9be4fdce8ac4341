"""Hyperparameter search for a model family with Ray Tune (``sfai tune MODEL --trials N``).

Each family's train module declares ``SEARCH_SPACE`` as plain data -- ``{"key": ("choice", [...])}``,
``("uniform", lo, hi)`` or ``("loguniform", lo, hi)`` -- and ``train_and_score(input_path, dataset, config)
-> float`` (lower is better) using the same training loop as ``sfai train``. Ray runs locally, or on the
cluster at ``ray_address`` / ``SFAI_RAY_ADDRESS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.families import get_family
from serving.errors import InvalidInput


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
    family.check_dataset(dataset)
    input_path = Path(input_path).resolve()
    if not input_path.is_file():
        raise InvalidInput(f"{input_path}: no such file")
    if trials < 1:
        raise InvalidInput("--trials must be at least 1")
    train_mod = family.load("train")
    space = getattr(train_mod, "SEARCH_SPACE", None)
    scorer = getattr(train_mod, "train_and_score", None)
    if not space or scorer is None:
        raise InvalidInput(f"model {family_name!r} has no search space to tune")

    import ray
    from ray import tune as rtune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    address = ray_address or os.environ.get("SFAI_RAY_ADDRESS")
    started = False
    if not ray.is_initialized():
        # "local" starts our own Ray even when another one runs on this machine
        kwargs = {"address": address} if address else {"address": "local", "num_cpus": max(1, os.cpu_count() or 1)}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        started = True
    fixed = dict(fixed or {})
    module_name = family.train_module

    def trainable(config: dict) -> dict:
        import importlib

        mod = importlib.import_module(module_name)
        return {"score": float(mod.train_and_score(input_path, dataset, {**config, **fixed}))}

    storage = None
    if settings is not None:
        storage = str((Path(settings.home) / "ray_results").resolve())
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
            run_config=ray.tune.RunConfig(name=f"tune-{family_name}", storage_path=storage, verbose=0),
        )
        results = tuner.fit()
        best = results.get_best_result()
        rows = [{"config": r.config, "score": r.metrics.get("score")} for r in results if r.metrics]
        if best.metrics is None or "score" not in best.metrics:
            raise RuntimeError(f"no tuning trial finished: {[str(r.error) for r in results if r.error]}")
        return {
            "family": family_name,
            "metric": "score (lower is better)",
            "best_config": {**best.config, **fixed},
            "best_score": float(best.metrics["score"]),
            "trials": rows,
        }
    finally:
        if started:
            ray.shutdown()
