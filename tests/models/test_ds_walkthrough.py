"""A data scientist following the maintenance docs literally: what the model commands say when the model asked for
is not there, and when a C-MAPSS file is scored with another subset's model."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from models.registry import ModelRegistry
from serving import tenancy
from serving.errors import NotFound
from tests.serving.test_cli import sfai


def test_a_missing_model_names_the_tenants_models(sfai_env, db, settings, demo_models):
    """`sfai models show rul` on a tenant with rul-fd001 said only "train one with 'sfai train rul ...'", as if the
    tenant had no RUL model; it names the models there (promote and rollback already did)."""
    tenancy.create_tenant(db, "acme", "C29")
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("rul-fd001", "maintenance", demo_models[0] / "rul" / "v1")
    with pytest.raises(NotFound, match=r"no model 'rul' for tenant 'acme' \(its models: rul-fd001\): train one with "
                                       r"'sfai train rul --dataset cmapss --input FILE --tenant acme'"):
        reg.get("rul")
    p = sfai(sfai_env, "models", "show", "rul", "--tenant", "acme", ok=False)
    assert p.stderr.startswith("error: no model 'rul' for tenant 'acme' (its models: rul-fd001): "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    tenancy.create_tenant(db, "empty", "C29")
    empty = ModelRegistry(db, settings.home, "empty")  # nothing to name: the message stays as it was
    with pytest.raises(NotFound, match=r"^no model 'rul' for tenant 'empty': train one with"):
        empty.get("rul")


def test_another_subsets_readings_out_of_range_say_which_model_to_train(sfai_env, db, settings, demo_models,
                                                                          tmp_path):
    """maintenance_models.md: test_FD002.txt with only rul-fd001 is scored with rul-fd001 and a warning. FD002's six
    flight conditions put its readings far outside a one-condition model's range, so the range check refused it as
    "a unit or column mix-up? (kelvin for degrees Rankine ...)", right after the warning that it was being scored.
    The refusal now says the file is another subset's and names the model to train."""
    tenancy.create_tenant(db, "acme", "C29")
    ModelRegistry(db, settings.home, "acme").register("rul-fd001", "maintenance", demo_models[0] / "rul" / "v1")
    manifest = json.loads((demo_models[0] / "rul" / "v1" / "manifest.json").read_text())
    assert "sensor_mean" in manifest["prep"]  # the range check is on for this model
    rows = pd.read_csv(demo_models[1] / "cmapss_demo.txt", sep=r"\s+", header=None)
    rows.iloc[:, 5:] = -1e6  # the sensors far below every training regime, as FD002's other flight conditions are
    rows.to_csv(tmp_path / "test_FD002.txt", sep=" ", header=False, index=False)
    p = sfai(sfai_env, "predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input",
             str(tmp_path / "test_FD002.txt"), "--output", str(tmp_path / "o.csv"), ok=False)
    error = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, p.stderr
    assert error[0].startswith("error: test_FD002.txt cannot be scored with rul-fd001, trained on another C-MAPSS "
                               "subset: column "), error[0]
    assert "out of range" in error[0] and "mix-up" not in error[0]
    assert error[0].endswith("Train rul-fd002 first: sfai train rul --dataset cmapss --input train_FD002.txt "
                             "--tenant acme"), error[0]
    # the same readings in a file of the model's own subset are the mix-up the check is for: its message stays
    shutil.copy(tmp_path / "test_FD002.txt", tmp_path / "test_FD001.txt")
    p = sfai(sfai_env, "predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input",
             str(tmp_path / "test_FD001.txt"), "--output", str(tmp_path / "o.csv"), ok=False)
    assert "a unit or column mix-up" in p.stderr and "cannot be scored with" not in p.stderr, p.stderr


def test_a_silent_tracking_server_during_promote_does_not_advise_train_no_track(tmp_path, monkeypatch):
    """`sfai models promote` with MLFLOW_TRACKING_URI on a server that does not answer warned that the aliases were
    not moved, advising "run without tracking (sfai train --no-track)": no option of a promotion."""
    import socket

    from models.tracking import Tracker, sync_aliases
    from serving.errors import Unavailable
    from serving.settings import Settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    settings = Settings(home=tmp_path, environment="test")
    with pytest.raises(Unavailable, match=r"does not answer \(.*\): start it or correct MLFLOW_TRACKING_URI$"):
        sync_aliases(settings, "acme.tiny", {"champion": (1, "abc")})
    with pytest.raises(Unavailable, match=r"or run without tracking \(sfai train --no-track\)$"):  # training: kept
        Tracker(settings, "acme/tiny").__enter__()


def test_a_file_naming_no_subset_says_which_of_several_rul_models_answered(sfai_env, db, settings, demo_models,
                                                                           tmp_path):
    """engines_line3.txt (no FD00X in its name) on a tenant with rul-fd001 and rul-fd002 was scored with the newest
    champion, rul-fd002, without a word; FD001 engines then got another subset's RULs. It still answers (the JSON
    line names the model), with a warning naming the others and --model."""
    tenancy.create_tenant(db, "acme", "C29")
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("rul-fd001", "maintenance", demo_models[0] / "rul" / "v1")
    shutil.copy(demo_models[1] / "cmapss_demo.txt", tmp_path / "engines_line3.txt")
    args = ["predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input", str(tmp_path / "engines_line3.txt"),
            "--output", str(tmp_path / "o.csv")]
    p = sfai(sfai_env, *args)  # one rul model: no doubt which
    assert json.loads(p.stdout)["model"] == "rul-fd001" and "warning" not in p.stderr, p.stderr
    reg.register("rul-fd002", "maintenance", demo_models[0] / "rul" / "v1")
    p = sfai(sfai_env, *args)
    assert json.loads(p.stdout)["model"] == "rul-fd002"
    assert ("warning: engines_line3.txt names no C-MAPSS subset (FD001..FD004 in its name); scoring with rul-fd002, "
            "the newest rul champion. This tenant also has rul-fd001: name the model of this file's engines with "
            "--model (e.g. --model rul-fd001)") in p.stderr, p.stderr
    p = sfai(sfai_env, *args, "--model", "rul-fd001")
    assert json.loads(p.stdout)["model"] == "rul-fd001" and "warning" not in p.stderr, p.stderr
