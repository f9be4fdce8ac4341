"""The data-scientist audit of the model CLI: config values checked before training (and before Ray), --alias up
front, rollback as undo, messages that name what is there, --output checks, tracker-free training, and the docs
that say so. Everything here is cheap: no test trains more than a few seconds."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from models.export import export
from models.families import FAMILIES, get_family
from models.registry import ModelRegistry, find_champion
from serving import tenancy
from serving.errors import InvalidInput, NotFound
from tests.serving.test_cli import sfai

ROOT = Path(__file__).resolve().parents[2]
DEMO_AI4I = "UDI,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],Torque [Nm],Tool wear [min]"


def config_class(family: str):
    import importlib

    mod, cls = get_family(family).config_class.rsplit(".", 1)
    return getattr(importlib.import_module(mod), cls)


# config values ---------------
@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("failure", {"epochs": 0}, "config epochs=0: expected a whole number >= 1"),
        ("failure", {"epochs": -1}, "config epochs=-1: expected a whole number >= 1"),
        ("failure", {"hidden": 0}, "config hidden=0: expected a whole number >= 1"),
        ("failure", {"folds": 0}, "config folds=0: expected a whole number from 2 to 100"),
        ("failure", {"folds": 1}, "config folds=1: expected a whole number from 2 to 100"),
        ("failure", {"threads": 0}, "config threads=0: expected a whole number from 1 to 256"),
        ("failure", {"pos_weight": float("nan")}, "config pos_weight=nan: expected a finite number > 0"),
        ("failure", {"pos_weight": "inf"}, "config pos_weight='inf': expected a finite number > 0"),
        ("failure", {"seed": -5}, "config seed=-5: expected a whole number from 0 to"),
        ("failure", {"lr": -1}, "config lr=-1: expected a finite number > 0"),
        ("failure", {"lr": 0}, "config lr=0: expected a finite number > 0"),
        ("failure", {"dropout": 1.0}, "config dropout=1.0: expected a finite number >= 0 and < 1"),
        ("failure", {"epochs": 2.5}, "config epochs=2.5: expected int"),
        ("failure", {"epochs": True}, "config epochs=True: expected int"),
        ("defect", {"missing_indicators": "ture"}, "config missing_indicators='ture': expected true or false"),
        ("defect", {"drift_prior": 2}, "config drift_prior=2: expected true or false"),
        ("defect", {"test_fraction": 1.0}, "config test_fraction=1.0: expected a finite number > 0 and < 1"),
        ("defect", {"max_missing": 0}, "config max_missing=0: expected a finite number > 0 and <= 1"),
        ("defect", {"epochs": 0}, "config epochs=0"),
        ("rul", {"members": 0}, "config members=0: expected a whole number >= 1"),
        ("rul", {"val_fraction": 0}, "config val_fraction=0: expected a finite number > 0 and < 1"),
        ("rul", {"use_cycle": "maybe"}, "config use_cycle='maybe': expected true or false"),
        ("energy", {"early_stop_days": 0}, "config early_stop_days=0: expected a whole number >= 1"),
        ("energy", {"layers": 0}, "config layers=0"),
        ("energy", {"calibrate": "ture"}, "config calibrate='ture'"),
    ],
)
def test_bad_config_values_are_refused_naming_the_key_and_range(family, overrides, message):
    with pytest.raises(InvalidInput) as e:
        get_family(family).check_config(overrides)
    assert message in e.value.message and "\n" not in e.value.message


@pytest.mark.parametrize(
    ("family", "overrides", "key", "want"),
    [
        ("defect", {"missing_indicators": "yes"}, "missing_indicators", True),
        ("defect", {"missing_indicators": "No"}, "missing_indicators", False),
        ("defect", {"missing_indicators": 1}, "missing_indicators", True),
        ("defect", {"missing_indicators": "0"}, "missing_indicators", False),
        ("defect", {"hidden": 0}, "hidden", 0),  # the logistic model
        ("defect", {"n_splits": 0}, "n_splits", 0),  # no validation splits
        ("rul", {"patience": 0, "max_windows": 0}, "patience", 0),
        ("rul", {"arch": "dcnn", "history": 0}, "history", 0),  # the DCNN alone
        ("energy", {"val_months": 0, "max_days": 0}, "val_months", 0),
        ("failure", {"lr": "1e-3"}, "lr", 1e-3),
        ("failure", {"epochs": 3.0}, "epochs", 3),
    ],
)
def test_documented_values_still_pass(family, overrides, key, want):
    cfg = config_class(family).from_dict(overrides)
    assert getattr(cfg, key) == want and type(getattr(cfg, key)) is type(want)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_number_of_every_family_has_a_range_and_the_defaults_pass_it(family):
    from models.config import RULES, rule

    cls = config_class(family)
    cls.from_dict({})  # the shipped config is valid
    assert set(RULES[family]) <= {f.name for f in fields(cls)}, "a rule for a key the config does not have"
    for f in fields(cls):
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            assert rule(family, f.name) is not None, f"{family}.{f.name} has no range in models/config.py"


def test_tune_refuses_a_bad_fixed_value_and_untunable_families_before_ray(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from models.tune import TUNABLE, tune

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    data = tmp_path / "ai4i.csv"
    data.write_text("UDI\n1\n")
    with pytest.raises(InvalidInput, match=r"config lr=-1: expected a finite number > 0"):
        tune("failure", data, "ai4i", 2, fixed={"lr": -1})
    with pytest.raises(InvalidInput, match=r"config folds=1"):
        tune("failure", data, "ai4i", 2, fixed={"folds": 1})
    with pytest.raises(InvalidInput, match="has no search space to tune; tunable: failure, rul"):
        tune("defect", data, "secom", 2)
    import importlib

    has_space = {n for n, f in FAMILIES.items() if getattr(importlib.import_module(f.train_module), "SEARCH_SPACE",
                                                           None)}
    assert set(TUNABLE) == has_space


# the CLI: options named, checked before anything is trained ---------------
def test_train_options_are_checked_before_training(sfai_env, tmp_path):
    missing = str(tmp_path / "not-there.csv")  # the checks come first: the file is never read
    base = ("train", "failure", "--dataset", "ai4i", "--input", missing, "--no-track")
    cases = [
        (("--epochs", "0"), "'--epochs'"),
        (("--epochs", "-1"), "'--epochs'"),
        (("--seed", "-5"), "'--seed'"),
        (("--alias", "foo"), "--alias 'foo': expected champion or challenger"),
    ]
    for extra, message in cases:
        p = sfai(sfai_env, *base, *extra, ok=False)
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, (extra, p.stderr)
    ok = tmp_path / "rows.csv"
    ok.write_text(DEMO_AI4I + ",Machine failure\n")
    p = sfai(sfai_env, "train", "failure", "--dataset", "ai4i", "--input", str(ok), "--no-track", "--set",
             "missing_indicators=ture", ok=False)
    assert "unknown failure config key(s): missing_indicators" in p.stderr
    p = sfai(sfai_env, "train", "defect", "--dataset", "secom", "--input", str(ok), "--no-track", "--set",
             "missing_indicators=ture", ok=False)
    assert "error: config missing_indicators='ture': expected true or false" in p.stderr
    p = sfai(sfai_env, "tune", "--help")
    assert "failure or rul" in p.stdout and "defect" not in p.stdout.split("Options")[0].split("Arguments")[1]


# registry: rollback, messages ---------------
class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x, targets=None):
        return self.lin(x).squeeze(-1), None


@pytest.fixture
def exported(tmp_path) -> Path:
    torch.manual_seed(0)
    export(Tiny(), np.zeros((4, 3), dtype=np.float32), tmp_path / "exp", {"name": "failure"})
    return tmp_path / "exp"


def test_rollback_steps_back_one_champion_each_time(db, tmp_path, exported):
    tenancy.create_tenant(db, "acme", "C29")
    reg = ModelRegistry(db, tmp_path / "home", "acme")
    for _ in range(3):
        reg.register("failure", "maintenance", exported)
    reg.promote("failure", 2)
    reg.promote("failure", 3)  # champions in turn: 1, 2, 3
    assert reg.rollback("failure").version == 2
    assert (reg.alias("failure", "champion"), reg.alias("failure", "challenger")) == (2, 3)
    assert reg.rollback("failure").version == 1  # one further back, not the model just rolled away from
    assert (reg.alias("failure", "champion"), reg.alias("failure", "challenger")) == (1, 2)
    with pytest.raises(NotFound, match="version 1 is its first champion; there is no earlier champion"):
        reg.rollback("failure")
    assert reg.alias("failure", "champion") == 1
    # a promotion after rollbacks continues from the champion in place
    reg.promote("failure", 3)
    assert reg.rollback("failure").version == 1


def test_promoting_twice_does_not_put_the_older_model_back(sfai_env, db, settings, exported):
    """``sfai models promote failure`` run twice (a script, a second click) promoted v2, then v1 again: the old
    champion is the challenger after a promotion. The second run is refused and says how to go back or to mean it;
    each change is said on stderr; a new challenger is promoted as before."""
    tenancy.create_tenant(db, "acme", "C29")
    reg = ModelRegistry(db, settings.home, "acme")
    for _ in range(2):
        reg.register("failure", "maintenance", exported)
    p = sfai(sfai_env, "models", "promote", "failure", "--tenant", "acme")
    assert p.stdout == "failure\t2\n"
    assert "failure: champion version 2 (was version 1); challenger version 1" in p.stderr
    p = sfai(sfai_env, "models", "promote", "failure", "--tenant", "acme", ok=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "version 1, was champion until version 2 replaced it" in p.stderr
    assert "'sfai models rollback failure --tenant acme'" in p.stderr and "--version 1 --tenant acme" in p.stderr
    assert reg.alias("failure", "champion") == 2
    p = sfai(sfai_env, "models", "rollback", "failure", "--tenant", "acme")  # back, then forward again (redo)
    assert p.stdout == "failure\t1\n" and "champion version 1 (was version 2); challenger version 2" in p.stderr
    assert sfai(sfai_env, "models", "promote", "failure", "--tenant", "acme").stdout == "failure\t2\n"
    reg.register("failure", "maintenance", exported)  # a new challenger
    assert sfai(sfai_env, "models", "promote", "failure", "--tenant", "acme").stdout == "failure\t3\n"
    assert sfai(sfai_env, "models", "promote", "failure", "--version", "2", "--tenant", "acme").stdout == \
        "failure\t2\n"  # named: meant


def test_messages_name_what_is_there(db, tmp_path, exported):
    tenancy.create_tenant(db, "acme", "C29")
    reg = ModelRegistry(db, tmp_path / "home", "acme", default_tenant="local")
    for _ in range(8):
        reg.register("failure", "maintenance", exported)
    with pytest.raises(NotFound, match=r"model 'failure' has no version 99 \(versions: 1-8\)"):
        find_champion(reg, "failure", "failure", 99)
    with pytest.raises(NotFound, match=r"no model 'nosuch' for tenant 'acme' \(its models: failure\)"):
        reg.promote("nosuch")
    with pytest.raises(NotFound, match=r"no model 'nosuch'"):
        reg.rollback("nosuch")
    with pytest.raises(NotFound) as e:
        find_champion(reg, "rul")
    assert "'sfai train rul --dataset cmapss --input FILE --tenant acme'" in e.value.message
    local = ModelRegistry(db, tmp_path / "home", "acme", default_tenant="acme")  # the CLI's default: no --tenant
    with pytest.raises(NotFound) as e:
        find_champion(local, "rul")
    assert "'sfai train rul --dataset cmapss --input FILE'" in e.value.message


def test_models_list_json_and_an_empty_tenant(sfai_env, db, settings, exported, tmp_path):
    tenancy.create_tenant(db, "acme", "C29")
    tenancy.create_tenant(db, "empty", "C29")
    metrics = {"val_roc_auc": 0.98, "parity_max_abs": 3e-8, "val_f1": 0.91, "val_epochs_mean": 3.0, "threshold": 0.6,
               "val_average_precision": 0.9, "train_seconds": 7.1}
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported, mlflow_run_id="abc123",
                                                      metrics=metrics)
    listed = json.loads(sfai(sfai_env, "models", "list", "--tenant", "acme", "--json").stdout)
    assert listed[0]["mlflow_run_id"] == "abc123" and listed[0]["metrics"] == metrics  # all of them
    # the table gives when each version was registered (it had no date), and a pipe gets no header line
    (line,) = sfai(sfai_env, "models", "list", "--tenant", "acme").stdout.splitlines()
    name, version, aliases, registered, shown = line.split("\t")
    assert (name, version, aliases) == ("failure", "v1", "champion")
    # the family's key metrics, not every one (a defect model's 22 filled the line)
    assert shown == "val_roc_auc=0.98, val_average_precision=0.9, val_f1=0.91, threshold=0.6, train_seconds=7.1"
    assert registered == datetime.fromisoformat(listed[0]["created_at"]).strftime("%Y-%m-%d %H:%M")
    p = sfai(sfai_env, "models", "list", "--tenant", "empty")
    assert p.stdout == "" and "no models registered for tenant 'empty'" in p.stderr and "--tenant empty" in p.stderr
    p = sfai(sfai_env, "models", "list", "--tenant", "empty", "--json")
    assert json.loads(p.stdout) == [] and "no models registered" in p.stderr
    p = sfai(sfai_env, "models", "promote", "nosuch", "--tenant", "acme", ok=False)
    assert "no model 'nosuch' for tenant 'acme' (its models: failure)" in p.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text(DEMO_AI4I + "\n1,M,298.1,308.6,1551,42.8,0\n")
    p = sfai(sfai_env, "predict", "failure", "--tenant", "acme", "--dataset", "ai4i", "--input", str(rows),
             "--output", str(tmp_path / "o.csv"), "--version", "99", ok=False)
    assert "model 'failure' has no version 99 (versions: 1)" in p.stderr


def test_predict_output_is_checked_before_scoring(sfai_env, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(DEMO_AI4I + "\n1,M,298.1,308.6,1551,42.8,0\n")
    base = ("predict", "failure", "--dataset", "ai4i", "--input", str(rows), "--output")
    p = sfai(sfai_env, *base, str(tmp_path), ok=False)
    assert p.stderr.strip() == f"error: {tmp_path} is a folder; give the file to write, e.g. {tmp_path}/failure.csv"
    missing = tmp_path / "nope" / "x.csv"
    p = sfai(sfai_env, *base, str(missing), ok=False)
    assert p.stderr.strip() == f"error: cannot write {missing}: folder {missing.parent} does not exist"
    assert not missing.parent.exists()  # not created


def test_scoring_a_wide_file_without_ids_prints_no_pandas_warning(tmp_path, monkeypatch):
    from models.files import csv_format
    from serving import batch, predictions

    path = tmp_path / "wide.csv"
    pd.DataFrame(np.zeros((30, 300)), columns=[f"f{i}" for i in range(300)]).to_csv(path, index=False)
    monkeypatch.setattr(predictions, "scorer", lambda family: lambda model, chunk: chunk[["UDI"]])
    chunks = batch._chunks(path, 10, "UDI", csv_format(path, "rows"), "rows")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        out = pd.concat(list(batch._local_batches("failure", None, chunks, "UDI")))
    assert out["UDI"].tolist() == list(range(1, 31))


def test_log_warnings_print_in_the_cli_format():
    from serving.cli.main import _CliFormatter

    record = logging.LogRecord("sfai.energy", logging.WARNING, __file__, 1, "start %s moved", ("2018-01-01",), None)
    assert _CliFormatter().format(record) == "warning: start 2018-01-01 moved"


# training without a tracker; energy on short files ---------------
def test_train_without_a_tracker(tmp_path):
    from models.failure.predict import score
    from models.failure.train import train
    from serving.runtime import OnnxModel
    from tests.datasets import need

    small = tmp_path / "small.csv"
    pd.read_csv(need("ai4i2020/ai4i2020_train.csv")).iloc[:600].to_csv(small, index=False)
    metrics = train(small, "ai4i", tmp_path / "out", config={"folds": 2, "epochs": 1, "patience": 1})
    assert 0 <= metrics["val_roc_auc"] <= 1
    got = score(OnnxModel(tmp_path / "out"), pd.read_csv(small).head(3))
    assert len(got) == 3 and got["failure_probability"].between(0, 1).all()


def test_energy_lowers_early_stop_days_for_a_short_file_unless_set(caplog):
    from models.energy.config import EnergyConfig
    from models.energy.train import fit_early_stop_days

    cfg = EnergyConfig()
    with caplog.at_level(logging.WARNING, "sfai.energy"):
        assert fit_early_stop_days(cfg, 55, explicit=False).early_stop_days == 18  # the demo's nine weeks
    assert "training with early_stop_days=18" in caplog.text
    assert fit_early_stop_days(cfg, 300, explicit=False) is cfg
    with pytest.raises(InvalidInput) as e:
        fit_early_stop_days(cfg, 55, explicit=True)
    assert "55 forecast days" in e.value.message and "needs 126" in e.value.message
    assert "--set early_stop_days=N (N <= 18)" in e.value.message
    with pytest.raises(InvalidInput, match="give a file of at least"):
        fit_early_stop_days(cfg, 15, explicit=False)  # too short even for the lowest


# docs ---------------
def test_docs_say_what_is_true():
    readme = (ROOT / "README.md").read_text()
    assert "sfai tenant subscribe local maintenance quality energy" in readme
    feature_store = (ROOT / "docs/feature_store.md").read_text()
    assert "Every model trains from it" not in feature_store and "`sfai train` reads the\nfile" in feature_store
    platform = (ROOT / "docs/platform.md").read_text()
    assert "do not give tenants access to the MLflow UI" in platform and "tracker=None" in platform
    assert "ray_results" in (ROOT / "docs/maintenance_models.md").read_text()
