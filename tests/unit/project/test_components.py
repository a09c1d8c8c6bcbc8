"""Component choices: the settings a template asks for, with the defaults an empty answer keeps."""

from __future__ import annotations

from qflow.project.components import Choice, choices, settings_of


def test_settings_come_with_their_defaults():
    assert settings_of(Choice("tracker", "mlflow")) == {"tracking_uri": None}
    dask = settings_of(Choice("launcher", "dask"))
    assert dask["n_workers"] == 2 and dask["memory_limit"] == "auto"
    assert settings_of(Choice("tracker", "wandb"), "shop")["project"] == "shop"
    assert choices("tracker") == ["file", "mlflow", "wandb"]
