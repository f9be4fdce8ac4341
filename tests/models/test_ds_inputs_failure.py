"""Failure and defect inputs found by a user audit: the too-few-rows message names the minimum and the way out."""

from __future__ import annotations

import pandas as pd
import pytest

from models.failure import features as FF
from models.failure import train as FT
from models.failure.config import FailureConfig
from serving.errors import InvalidInput
from tests.datasets import need


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    return pd.read_csv(need("ai4i2020/ai4i2020_train.csv"))


@pytest.mark.parametrize(("rows", "overrides", "message"), [
    (43, {}, "f.csv: too few rows to train (43): 5 folds need at least 50 (10 per fold); add rows, or train with "
             "fewer folds (--set folds=4 needs 40 rows)"),
    (25, {"folds": 3}, "f.csv: too few rows to train (25): 3 folds need at least 30 (10 per fold); add rows, or "
                       "train with fewer folds (--set folds=2 needs 20 rows)"),
    (15, {}, "f.csv: too few rows to train (15): 5 folds need at least 50 (10 per fold); add rows (the fewest "
             "folds, --set folds=2, need 20 rows)"),
    (19, {"folds": 2}, "f.csv: too few rows to train (19): 2 folds need at least 20 (10 per fold); add rows (the "
                       "fewest folds, --set folds=2, need 20 rows)"),
])
def test_too_few_rows_names_the_minimum_and_the_folds_option(ai4i, tmp_path, rows, overrides, message):
    path = tmp_path / "f.csv"
    ai4i.head(rows).to_csv(path, index=False)
    with pytest.raises(InvalidInput) as e:
        FT.check_rows(path, FF.read_rows(path), FailureConfig.from_dict(overrides))
    assert str(e.value) == message
    with pytest.raises(InvalidInput, match=rf"too few rows to train \({rows}\)"):
        FT.preflight(path, overrides)


def test_enough_rows_for_fewer_folds_pass_the_row_check(ai4i, tmp_path):
    path = tmp_path / "f.csv"
    df = ai4i.head(4000)
    df = pd.concat([df[df["Machine failure"] == 1].head(4), df[df["Machine failure"] == 0].head(36)])
    df.to_csv(path, index=False)
    assert len(FT.check_rows(path, FF.read_rows(path), FailureConfig.from_dict({"folds": 4}))) == 40
