"""``models.tune.tune``: two tiny Ray Tune trials over the failure family's search space."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tests.datasets import need


def test_search_space_maps_to_ray():
    pytest.importorskip("ray")
    from models.failure.train import SEARCH_SPACE
    from models.tune import ray_space

    assert set(ray_space(SEARCH_SPACE)) == set(SEARCH_SPACE)


@pytest.mark.skipif(not os.environ.get("SFAI_TEST_RAY"), reason="starts Ray (~30-60 s); set SFAI_TEST_RAY=1")
def test_tune_two_trials(tmp_path):
    pytest.importorskip("ray")
    from models.tune import tune

    small = tmp_path / "small.csv"
    pd.read_csv(need("ai4i2020/ai4i2020_train.csv")).iloc[:1500].to_csv(small, index=False)
    fixed = {"folds": 2, "epochs": 2, "patience": 1}
    out = tune("failure", small, "ai4i", 2, fixed=fixed)
    assert len(out["trials"]) == 2 and out["best_config"]["folds"] == 2
    assert 0 <= out["best_score"] <= 1
