"""Where the tests look for the shared datasets: ``../shared`` next to the checkout, or ``SFAI_SHARED``."""

from tests import datasets


def test_shared_datasets_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("SFAI_SHARED", raising=False)
    assert datasets.datasets_dir() == datasets.ROOT.parent / "shared" / "datasets"
    monkeypatch.setenv("SFAI_SHARED", str(tmp_path))
    assert datasets.datasets_dir() == tmp_path / "datasets"


def test_missing_dataset_skips_with_a_reason_off_ci(monkeypatch, capsys):
    import pytest

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        datasets.need("no-such-dataset/file.csv")
    assert "SKIP: dataset" in capsys.readouterr().out
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        datasets.need("no-such-dataset/file.csv")
