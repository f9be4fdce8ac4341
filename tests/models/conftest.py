"""Fixtures shared by the model families' tests."""

from pathlib import Path

import pandas as pd
import pytest

from tests.datasets import need


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> Path:
    """1 January - 14 February 2018 (45 days) of the steel plant, with its CO2 column (the energy tests' series)."""
    path = tmp_path_factory.mktemp("steel") / "series.csv"
    pd.read_csv(need("steel_energy/steel_industry_2018_jan_oct.csv")).head(45 * 96).to_csv(path, index=False)
    return path
