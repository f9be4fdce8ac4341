"""The RUL model: C-MAPSS parsing and regimes, ONNX parity, the predict contract, no torch in predict,
determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.rul import data as D
from models.rul import predict as P
from models.rul import train as T
from models.rul.config import RulConfig
from models.rul.metrics import nasa_score, rmse
from models.tracking import Tracker
from serving.errors import InvalidInput
from serving.runtime import OnnxModel
from tests.datasets import assert_predicts_without_torch, need

QUICK = {"members": 1, "epochs": 2, "patience": 1, "channels": 8, "hidden": 8, "val_cuts": 2}


def write_nasa(df: pd.DataFrame, path: Path) -> Path:
    """NASA's format: space-separated, no header, trailing spaces."""
    lines = [" ".join(f"{v:g}" for v in row) + "  " for row in df[D.COLUMNS].to_numpy()]
    path.write_text("\n".join(lines) + "\n")
    return path


def truncate(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Cut each unit at a random cycle, like NASA's test files (some shorter than the window)."""
    rng = np.random.default_rng(seed)
    keep = {u: int(rng.integers(5, len(g) + 1)) for u, g in df.groupby("unit")}
    return df[df["cycle"] <= df["unit"].map(keep)].reset_index(drop=True)


@pytest.fixture(scope="module")
def fd001() -> pd.DataFrame:
    df = D.read_cmapss(need("cmapss/train_FD001.txt"))
    return df[df["unit"] <= 12].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(fd001, tmp_path_factory):
    out = tmp_path_factory.mktemp("rul")
    path = write_nasa(fd001, out / "train_FD001.txt")
    metrics = T.train(path, "cmapss", out / "model", config=QUICK, tracker=Tracker(None, "t", enabled=False))
    return out, metrics


def test_metrics():
    assert rmse([3, 4], [0, 0]) == pytest.approx(np.sqrt(12.5))
    assert nasa_score([10, 0], [0, 13]) == pytest.approx((np.e - 1) + (np.e - 1))


def test_fd001_drops_constant_sensors_and_has_one_regime(fd001):
    prep = D.fit_prep(fd001, window=30, cap=125, use_cycle=False)
    assert len(prep["regime_centres"]) == 1 and not prep["regime_onehot"]
    for constant in ("sensor_1", "sensor_5", "sensor_6", "sensor_10", "sensor_16", "sensor_18", "sensor_19"):
        assert constant not in prep["sensors"]
    assert "sensor_11" in prep["sensors"] and prep["features"] == prep["sensors"]


def test_fd002_finds_six_operating_regimes():
    df = D.read_cmapss(need("cmapss/train_FD002.txt"))
    df = df[df["unit"] <= 30]
    prep = D.fit_prep(df, window=30, cap=125, use_cycle=False)
    reg = D.assign_regimes(df, prep)
    assert len(prep["regime_centres"]) == 6 and prep["regime_onehot"]
    no_onehot = D.fit_prep(df, window=30, cap=125, use_cycle=False, onehot=False)
    assert not no_onehot["regime_onehot"] and no_onehot["features"] == no_onehot["sensors"]
    assert np.bincount(reg, minlength=6).min() > 0.1 * len(df)  # six flight conditions, each well used
    z = D.features(df, prep)[:, : len(prep["sensors"])]
    assert np.abs(z.mean(0)).max() < 0.1  # per-regime z-scores


def test_smoothing_is_causal_per_unit(fd001):
    """A truncated unit gets exactly the features the full unit had at the same cycles (no look-ahead),
    and one unit's history never leaks into the next."""
    prep = D.fit_prep(fd001, window=30, cap=125, use_cycle=False, smooth=0.3)
    full = D.split_units(fd001, D.features(fd001, prep))
    cut = truncate(fd001)
    part = D.split_units(cut, D.features(cut, prep))
    for u, x in part.items():
        assert np.allclose(x, full[u][: len(x)], atol=1e-5)
    raw = D.split_units(fd001, D.features(fd001, {**prep, "smooth": 0.0}))
    assert np.allclose(full[2][0], raw[2][0]) and not np.allclose(full[2][5], raw[2][5])


def test_windows_pad_short_units_with_their_first_row():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    w = D.unit_windows(x, 6)
    assert w.shape == (4, 6, 3)
    assert np.array_equal(w[0], np.repeat(x[:1], 6, axis=0)) and np.array_equal(w[-1][-4:], x)


def test_train_exports_with_parity(trained):
    out, metrics = trained
    m = OnnxModel(out / "model").manifest
    assert metrics["parity_max_abs"] <= 1e-4 and np.isfinite(metrics["val_rmse"])
    # the members' time is fit_seconds, as for the other families; train_seconds is the CLI's whole path (the two
    # had shared the name with different values: validation.json and the CLI disagreed)
    assert metrics["fit_seconds"] > 0 and "train_seconds" not in metrics
    assert m["prep"]["window"] == RulConfig().input_window and m["features"] == m["prep"]["features"] and m["data_hash"]
    assert m["inputs"][0]["shape"] == ["batch", RulConfig().input_window, len(m["features"])]


def test_onnx_equals_torch(fd001, tmp_path):
    import torch

    from models.export import export
    from models.training import predict_batches

    for arch, extra in (("feat", {}), ("dcnn", {}), ("dcnn_window_only", {"history": 0}), ("cnn", {}), ("gru", {})):
        cfg = {**QUICK, "epochs": 1, "arch": arch.split("_")[0], **extra}
        fitted = T.fit_ensemble(fd001, RulConfig.from_dict(cfg))
        _, x = D.last_windows(truncate(fd001), fitted.prep)
        export(fitted.model, x[:4], tmp_path / arch, {"name": "rul"})
        got = OnnxModel(tmp_path / arch).run({"x": x})["y"]
        with torch.no_grad():
            expected = predict_batches(fitted.model, x)
        assert got.shape == (12,) and np.max(np.abs(got - expected)) <= 1e-4


def test_feat_summaries_are_the_means_and_slopes_of_each_sensor():
    """The fixed summary weights compute exactly the windowed means and least-squares slopes they name."""
    import torch

    from models.rul.module import RulFeat

    cfg = RulConfig.from_dict({"history": 12, "window": 12, "mean_spans": "1,4,12", "slope_spans": "3,12"})
    net = RulFeat(2, cfg)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 2)).astype(np.float32)
    got = torch.matmul(torch.as_tensor(x).transpose(1, 2), net.weights).numpy()  # [batch, sensor, summary]
    for b in range(3):
        for f in range(2):
            series = x[b, :, f]
            expected = [series[-k:].mean() for k in (1, 4, 12)]
            expected += [10 * np.polyfit(np.arange(k), series[-k:], 1)[0] for k in (3, 12)]
            assert np.allclose(got[b, f], expected, atol=1e-5)


def test_the_cycle_feature_is_the_age_standardised_or_clipped(fd001):
    prep = D.fit_prep(fd001, window=120, cap=125, use_cycle=True)
    age = D.features(fd001, prep)[:, -1]
    cycles = fd001["cycle"].to_numpy(float)
    assert np.allclose(age, (cycles - cycles.mean()) / cycles.std(), atol=1e-5)
    clipped = D.features(fd001, {**prep, "cycle_clip": 60})[:, -1]
    assert np.allclose(clipped, np.minimum(cycles, 60) / 60, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mean_spans": "1,500"}, "mean_spans='1,500': expected comma-separated cycle counts from 1 to 120"),
        ({"slope_spans": "1,10"}, "slope_spans='1,10': expected comma-separated cycle counts from 2 to 120"),
        ({"slope_spans": "ten"}, "slope_spans='ten'"),
        ({"arch": "lstm"}, "expected feat, cnn, dcnn or gru"),
    ],
)
def test_bad_config_is_refused_in_one_line(overrides, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        RulConfig.from_dict(overrides)
    assert "\n" not in str(e.value)


def test_each_fold_trains_one_member_per_learning_rate_and_older_archs_keep_their_defaults(fd001):
    cfg = RulConfig.from_dict({**QUICK, "members": 2, "epochs": 1})
    assert cfg.arch == "feat" and cfg.fold_lrs == [cfg.lr, cfg.lr_second] == [3e-3, 3e-3]
    fitted = T.fit_ensemble(fd001, cfg)
    assert fitted.metrics["folds"] == 2 and fitted.metrics["members"] == 4 and len(fitted.model.members) == 4
    # a fold's two members share the learning rate but not the seed: different weights, not a copy
    first, second = (m.mlp[0].weight.detach() for m in fitted.model.members[:2])
    assert not torch.equal(first, second)
    assert fitted.prep["features"][-1] == "cycle"  # feat reads the engine's age, standardised on the training file
    dcnn = RulConfig.from_dict({"arch": "dcnn"})
    assert (dcnn.hidden, dcnn.dropout, dcnn.fold_lrs) == (100, 0.5, [1e-3])
    assert (dcnn.use_cycle, dcnn.train_max_rul) == (False, 175)
    assert RulConfig.from_dict({"arch": "dcnn", "dropout": 0.2}).dropout == 0.2  # an explicit value wins


def test_predict_contract_one_row_per_unit(trained, fd001, tmp_path):
    out, _ = trained
    test = truncate(fd001)
    assert (test.groupby("unit").size() < 30).any()  # some units shorter than the window
    frame = P.predict(OnnxModel(out / "model"), write_nasa(test, tmp_path / "test_FD001.txt"), "cmapss", start=None)
    assert list(frame.columns) == ["unit", "rul"]
    assert frame["unit"].tolist() == sorted(test["unit"].unique()) and (frame["rul"] >= 0).all()


def test_bad_input(trained, fd001, tmp_path):
    model = OnnxModel(out := trained[0] / "model")
    assert out.exists()
    short = tmp_path / "short.txt"
    short.write_text("1 1 0.0 0.0 100.0\n")
    with pytest.raises(InvalidInput, match="expected 26 columns"):
        P.predict(model, short, "cmapss")
    bad = write_nasa(fd001.iloc[:40], tmp_path / "bad.txt")
    lines = bad.read_text().splitlines()
    parts = lines[3].split()
    parts[10] = "n/a"  # the 6th sensor
    lines[3] = " ".join(parts)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match="sensor_6") as e:
        P.predict(model, bad, "cmapss")
    assert "\n" not in str(e.value)
    # a fractional unit (which would merge into another) or a cycle below 1: refused, naming row and value
    for col, value, message in ((0, "1.5", "column 'unit' row 4: expected a whole number, got '1.5'"),
                                (1, "0", "column 'cycle' row 4: expected a whole number from 1, got '0'")):
        good = write_nasa(fd001.iloc[:40], tmp_path / "ids.txt").read_text().splitlines()
        parts = good[3].split()
        parts[col] = value
        good[3] = " ".join(parts)
        (tmp_path / "ids.txt").write_text("\n".join(good) + "\n")
        with pytest.raises(InvalidInput, match=message):
            P.predict(model, tmp_path / "ids.txt", "cmapss")
    # API records go through the same check
    records = fd001.iloc[:3].assign(unit=[1.0, 1.0, 2.5])
    with pytest.raises(InvalidInput, match="column 'unit' row 3: expected a whole number, got 2.5"):
        P.score(model, records)


def test_a_reading_far_outside_the_training_data_is_refused(trained, fd001):
    """sensor_9 at 90,000 (trained around 9,061 +- 23) or at 1e39 had been answered with an RUL of 0.0 (MES audit):
    a reading 100 standard deviations past every regime's mean is a data error, refused naming column and row
    (at 1,000, kelvin for degrees Rankine and rev/s for rpm had passed: process-engineer audit). The file's own
    readings, and a worn engine's drift, pass."""
    model = OnnxModel(trained[0] / "model")
    rows = fd001[fd001["unit"] <= 2].drop(columns=["rul"], errors="ignore").reset_index(drop=True)
    assert len(P.score(model, rows)) == 2
    sensor = model.manifest["prep"]["sensors"][0]
    for value in (1e39, 90000.0 * (1 + rows[sensor].iloc[0])):
        odd = rows.copy()
        odd.loc[5, sensor] = value
        with pytest.raises(InvalidInput, match=rf"^column '{sensor}' row 6: .* is out of range, far outside what "
                                               r"this model was trained on \(.* to .*, 100 standard deviations"
                                               r".* Or readings of other operating conditions than the model's \("
                                               r"another C-MAPSS subset, another engine type\)"):
            P.score(model, odd)
    kept = model.manifest["prep"]["sensors"]
    assert {"sensor_2", "sensor_9"} <= set(kept)
    for column, factor in (("sensor_2", 5 / 9), ("sensor_9", 1 / 60)):  # kelvin for degrees Rankine, rev/s for rpm
        odd = rows.assign(**{column: rows[column] * factor})
        with pytest.raises(InvalidInput, match=rf"^column '{column}' row 1: .* is out of range"):
            P.score(model, odd)
    worn = rows.copy()
    std = np.asarray(model.manifest["prep"]["sensor_std"])[0]
    for j, c in enumerate(model.manifest["prep"]["sensors"]):
        worn[c] = worn[c] + 20 * std[j]  # twenty deviations: far worn, but a reading
    assert len(P.score(model, worn)) == 2


def test_cycles_that_skip_numbers_are_warned_of(trained, fd001):
    """Rows for cycles 51-70 of an engine left out were scored without a word; the model reads the rows as
    consecutive cycles (process-engineer audit). The answer still comes, with a warning naming the unit and the gap."""
    model = OnnxModel(trained[0] / "model")
    rows = fd001[fd001["unit"] <= 2].drop(columns=["rul"], errors="ignore").reset_index(drop=True)
    assert P.score(model, rows).attrs["warnings"] == []
    holed = rows[~((rows["unit"] == 2) & rows["cycle"].between(51, 70))]
    out = P.score(model, holed)
    assert len(out) == 2 and out.attrs["warnings"] == [
        "units 2 (20 missing, the first gap before cycle 71): cycles skip numbers; the model reads the rows sent as "
        "consecutive cycles, so its RUL for them is less sure: send every cycle"]
    shuffled = rows.sample(frac=1.0, random_state=0)  # the order rows come in is no gap
    assert P.score(model, shuffled).attrs["warnings"] == []


def test_predict_does_not_import_torch(trained, fd001, tmp_path):
    out, _ = trained
    path = write_nasa(truncate(fd001), tmp_path / "test_FD001.txt")
    assert_predicts_without_torch("rul", out / "model", path, "cmapss", 12)


def test_training_is_deterministic(fd001):
    cfg = RulConfig.from_dict({**QUICK, "epochs": 1})
    a, b = T.fit_ensemble(fd001, cfg), T.fit_ensemble(fd001, cfg)
    assert a.metrics["val_rmse"] == b.metrics["val_rmse"]
    assert np.array_equal(a.residuals[1], b.residuals[1])


def test_members_run_a_fixed_schedule_unless_early_stopping_on_their_own_engines(fd001):
    """Patience 0: every epoch runs and the last weights are kept (nothing selected on the scoring cuts);
    patience > 0 early-stops on engines taken from the member's training engines, never its scoring fold."""
    fixed = T.fit_ensemble(fd001, RulConfig.from_dict({**QUICK, "epochs": 3, "patience": 0}))
    assert fixed.metrics["val_epochs_mean"] == 3 and np.isfinite(fixed.metrics["val_rmse"])
    cfg = RulConfig.from_dict({**QUICK, "epochs": 3, "patience": 1})
    per_unit = D.split_units(
        fd001, D.features(fd001, D.fit_prep(fd001, window=cfg.window, cap=cfg.cap, use_cycle=False))
    )
    model, res = T.fit_member(per_unit, sorted(per_unit)[:8], cfg, seed=0)
    assert 2 <= len(res.history) <= 3 and res.best_epoch >= 0


def test_history_branch_reads_the_long_window_and_only_the_dcnn_gets_it(fd001):
    """dcnn: inputs of ``history`` cycles (short units front-padded), the convolutions on the last ``window`` of
    them, the history branch on all of them averaged in blocks; feat summarises all of them; cnn/gru keep the
    window."""
    import torch

    from models.rul.module import build

    cfg = RulConfig.from_dict({"arch": "dcnn"})
    assert cfg.history > cfg.window and cfg.input_window == cfg.history == RulConfig().input_window
    assert RulConfig.from_dict({"arch": "gru"}).input_window == cfg.window
    assert RulConfig.from_dict({"arch": "dcnn", "history": 0}).input_window == cfg.window
    with pytest.raises(InvalidInput, match="history_pool"):
        RulConfig.from_dict({"arch": "dcnn", "history_pool": 7})
    prep = D.fit_prep(fd001, window=cfg.input_window, cap=125, use_cycle=False, smooth=0.3)
    units, x = D.last_windows(truncate(fd001), prep)
    assert x.shape == (len(units), cfg.history, len(prep["features"]))
    model = build(x.shape[2], cfg).eval()
    with torch.no_grad():
        model.mlp[-1].bias.fill_(0.5)  # untrained outputs are clipped at 0; lift them to compare
        base = model(torch.as_tensor(x))[0]
        older = torch.as_tensor(x).clone()
        older[:, : cfg.history - cfg.window] += 1.0  # change only cycles outside the recent window
        assert not torch.allclose(model(older)[0], base)  # the history branch sees them


def test_max_windows_draws_a_fresh_subset_each_epoch():
    x, y = np.arange(100, dtype=np.float32)[:, None, None], np.zeros(100, dtype=np.float32)
    loader = T.member_loader(x, y, RulConfig.from_dict({"max_windows": 30, "batch_size": 8}), seed=0)
    first, second = (np.concatenate([xb.numpy().ravel() for xb, _ in loader]) for _ in range(2))
    assert len(first) == len(second) == 30 and len(set(first)) == 30 and set(first) != set(second)


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_reading_is_refused_naming_its_column_and_row(trained, fd001, tmp_path, value):
    """true is no reading (pandas reads it as 1.0): refused in API records (JSON booleans), naming the column and
    row, as text is; a NASA file holds text only, and the text True is no number either."""
    model = OnnxModel(trained[0] / "model")
    sensor = model.manifest["prep"]["sensors"][0]
    for column in (sensor, "op_setting_3", "cycle"):
        records = fd001.iloc[:40].to_dict("records")
        records[5][column] = value
        with pytest.raises(InvalidInput, match=f"^column '{column}' row 6: expected a number, got {value}$"):
            P.score(model, pd.DataFrame.from_records(records))
    flags = fd001.iloc[:40].assign(**{sensor: value})  # a boolean column (an Arrow or Parquet body)
    with pytest.raises(InvalidInput, match=f"^column '{sensor}' row 1: expected a number, got {value}$"):
        P.score(model, flags)
    lines = write_nasa(fd001.iloc[:40], tmp_path / "flags.txt").read_text().splitlines()
    parts = lines[3].split()
    parts[4 + int(sensor.split("_")[1])] = str(value)  # unit, cycle, three settings, then sensor_1 ...
    lines[3] = " ".join(parts)
    (tmp_path / "flags.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=f"column '{sensor}' row 4: expected a number, got '{value}'"):
        P.predict(model, tmp_path / "flags.txt", "cmapss")


def test_a_file_of_another_shape_or_a_nan_reading_is_named_as_it_is(tmp_path):
    """A NaN reading was reported as "an empty cell", and the AI4I CSV given to `predict rul` as "got 12" columns
    (it has 14, with commas): the messages now say what the file holds."""
    from models.rul.data import read_cmapss

    nan = tmp_path / "nan.txt"
    nan.write_text("1 1 0.1 0.2 100 NaN " + " ".join(str(i) for i in range(20)) + "\n")
    with pytest.raises(InvalidInput, match=r"column 'sensor_1' row 1: expected a number, got 'NaN'$"):
        read_cmapss(nan)
    csv = tmp_path / "rows.csv"
    csv.write_text("UDI,Product ID,Type,Air temperature [K]\n1,M14860,M,298.1\n")
    with pytest.raises(InvalidInput, match="reads as a comma-separated file"):
        read_cmapss(csv)
