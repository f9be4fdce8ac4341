"""``models.tune.tune``: two tiny Ray Tune trials over the failure family's search space."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.datasets import need


def test_search_space_maps_to_ray():
    pytest.importorskip("ray")
    from models.failure.train import SEARCH_SPACE
    from models.tune import ray_space

    assert set(ray_space(SEARCH_SPACE)) == set(SEARCH_SPACE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 10**23}, "--trials must be a whole number from 1 to 10000"),  # Ray started and ran
        ({"trials": 0}, "from 1 to 10000"),
        ({"seed": -1}, "--seed must be a whole number"),
        ({"fixed": {"nokey": 1}}, "unknown failure config key(s): nokey"),  # was a Ray traceback in every trial
        ({"fixed": {"epochs": "abc"}}, "config epochs='abc': expected int"),
        ({"fixed": {"hidden": "big"}}, "config hidden='big'"),  # a search-space key, overridden badly
    ],
)
def test_bad_options_fail_before_ray_starts(tmp_path, monkeypatch, kwargs, message):
    ray = pytest.importorskip("ray")
    from models.tune import tune
    from serving.errors import InvalidInput

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    data = tmp_path / "ai4i.csv"
    data.write_text("UDI\n1\n")
    with pytest.raises(InvalidInput) as e:
        tune("failure", data, "ai4i", kwargs.pop("trials", 2), **kwargs)
    assert message in e.value.message and "\n" not in e.value.message


def test_a_failed_trial_is_one_short_line():
    from models.tune import _short_error

    err = RuntimeError("Traceback (most recent call last):\n  File x\n    boom()\nInvalidInput: bad row 7\n")
    assert _short_error(err) == "InvalidInput: bad row 7"
    assert len(_short_error(RuntimeError("x" * 5000))) < 310


@pytest.mark.skipif(not os.environ.get("SFAI_TEST_RAY"), reason="starts Ray (~30-60 s); set SFAI_TEST_RAY=1")
def test_tune_two_trials(tmp_path, capsys):
    pytest.importorskip("ray")
    from models.tune import tune

    small = tmp_path / "small.csv"
    pd.read_csv(need("ai4i2020/ai4i2020_train.csv")).iloc[:1500].to_csv(small, index=False)
    fixed = {"folds": 2, "epochs": 2, "patience": 1}
    out = tune("failure", small, "ai4i", 2, fixed=fixed)
    assert len(out["trials"]) == 2 and out["best_config"]["folds"] == 2
    assert 0 <= out["best_score"] <= 1
    # stdout is the caller's (sfai tune prints one JSON line there): Ray Tune's configuration box goes to stderr
    captured = capsys.readouterr()
    assert captured.out == "" and "Configuration for experiment" in captured.err
    # no terminal here: a plain line per finished trial instead of a bar
    assert "progress: tuning: 1/2 trials" in captured.err and "progress: tuning: 2/2 trials, best " in captured.err


def test_the_best_config_comes_back_as_a_train_command():
    """`sfai tune` printed the best config as JSON only, to be rewritten by hand as --set options; it now also
    prints the command, whose options read back to the same config, and names what its score is."""
    import shlex

    from models.tune import SCORE_MEANING
    from serving.cli.models import _parse_sets, train_command

    config = {"lr": 0.0031, "hidden": 64, "dropout": 0.1, "arch": "gru", "members": 2, "use_x": True}
    cmd = train_command("rul", "cmapss", Path("data/train FD001.txt"), config)
    argv = shlex.split(cmd)
    assert argv[:7] == ["sfai", "train", "rul", "--dataset", "cmapss", "--input", "data/train FD001.txt"]
    assert _parse_sets([argv[i + 1] for i, a in enumerate(argv) if a == "--set"]) == config
    assert "average precision" in SCORE_MEANING["failure"] and "RMSE" in SCORE_MEANING["rul"]


def test_a_file_every_trial_would_refuse_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """A file without failures ran every trial to a meaningless score (train refused it; tuning did not)."""
    ray = pytest.importorskip("ray")
    from models.tune import tune
    from serving.errors import InvalidInput

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    rows = pd.read_csv(need("ai4i2020/ai4i2020_train.csv"))
    nofail = tmp_path / "nofail.csv"
    rows[rows["Machine failure"] == 0].head(300).to_csv(nofail, index=False)
    with pytest.raises(InvalidInput, match="0 of 300 rows are machine failures"):
        tune("failure", nofail, "ai4i", 2, fixed={"folds": 2})


def test_a_fixed_key_is_not_searched_and_rul_trials_say_what_they_trained(tmp_path, monkeypatch):
    """Data scientist's audit: ``--set lr=5`` still sampled lr in every trial and reported the samples, though 5 was
    used; and a RUL tuning recommended a command whose second member per fold kept the untuned lr_second (its
    validation 17.62 against the trial's 18.32). A fixed key leaves the search space (all of them fixed: refused),
    the trials report what they ran, RUL's trial settings are named with a command that reproduces the best
    trial, and the recommended training gives both members the tuned lr."""
    ray = pytest.importorskip("ray")
    from ray import tune as rtune

    from models.rul.train import SEARCH_SPACE as RUL_SPACE
    from models.tune import tune
    from serving.cli.models import _parse_sets, train_command
    from serving.errors import InvalidInput

    seen = {}

    class Result:
        def __init__(self, config: dict) -> None:
            self.config, self.metrics, self.error = config, {"score": 18.3}, None

    class Results(list):
        def get_best_result(self):  # noqa: ANN202
            return self[0]

    class Tuner:
        def __init__(self, trainable, param_space, **kwargs) -> None:  # noqa: ANN001
            seen["space"] = param_space

        def fit(self):  # noqa: ANN202
            return Results([Result({"hidden": 128, "smooth": 0.2, "dropout": 0.1, "lr": 0.002,
                                    "weight_decay": 1e-4} if "lr" in seen["space"] else
                                   {k: 1 for k in seen["space"]})])

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(rtune, "Tuner", Tuner)
    monkeypatch.setattr("models.rul.train.preflight", lambda *a: None, raising=False)
    data = tmp_path / "train_FD001.txt"
    data.write_text("1 1 0 0 100 " + " ".join(["1"] * 21) + "\n")
    out = tune("rul", data, "cmapss", 2, fixed={"epochs": 3})
    assert set(seen["space"]) == set(RUL_SPACE)
    assert out["best_config"]["lr_second"] == 0.002 == out["best_config"]["lr"]  # both members at the tuned lr
    assert out["trial_settings"] == {"members": 1, "lr_second": 0.0}
    assert out["best_trial_config"] == {"hidden": 128, "smooth": 0.2, "dropout": 0.1, "lr": 0.002,
                                        "weight_decay": 1e-4, "epochs": 3, "members": 1, "lr_second": 0.0}
    cmd = train_command("rul", "cmapss", data, out["best_trial_config"])
    assert _parse_sets([a.split("--set ")[-1] for a in cmd.split(" --set ")[1:]]) == out["best_trial_config"]
    out = tune("rul", data, "cmapss", 2, fixed={"lr": 0.004, "epochs": 3})
    assert "lr" not in seen["space"] and all(t["config"]["lr"] == 0.004 for t in out["trials"])
    assert out["best_config"]["lr"] == 0.004 == out["best_config"]["lr_second"]
    out = tune("rul", data, "cmapss", 2, fixed={"lr_second": 0.001, "epochs": 3})
    assert out["best_config"]["lr_second"] == 0.001 and "lr_second" not in out["trial_settings"]
    with pytest.raises(InvalidInput, match="is fixed with --set: nothing is left to tune"):
        tune("rul", data, "cmapss", 2, fixed={k: 0.1 if k != "hidden" else 64 for k in RUL_SPACE})
