"""Shared fixtures: a tiny SentencePiece vocabulary and random 2-layer models.

Everything is built here from sentences the tests generate themselves, so the
core suite needs neither network nor ../shared/data.
"""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]


def data_dir():
    """../shared/data (or TFKOSENT_DATA_DIR), or None when absent."""
    path = os.environ.get("TFKOSENT_DATA_DIR") or str(REPO.parent / "shared" / "data")
    return path if os.path.isdir(path) else None


@pytest.fixture(scope="session")
def shared_data_dir():
    path = data_dir()
    if path is None:
        pytest.skip("../shared/data is not available")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tfkosent import testing
    return testing.write_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny_bert"))


@pytest.fixture(scope="session")
def tiny_roberta_model_dir(tmp_path_factory):
    from tfkosent import testing
    return testing.write_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny_roberta"),
                                    packing="roberta", pooling="cls_dense_tanh")


@pytest.fixture(scope="session")
def tiny_prefixed_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with e5's text prefix "query: " (a copy; its config.json edited)."""
    import json
    import shutil
    path = tmp_path_factory.mktemp("models") / "tiny_prefixed"
    shutil.copytree(tiny_model_dir, path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    config["preprocess"]["text_prefix"] = "query: "
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def tiny_export_dir(tiny_model_dir, tmp_path_factory):
    from tfkosent.export import export_model
    return export_model(tiny_model_dir, str(tmp_path_factory.mktemp("exports") / "tiny"))


@pytest.fixture(scope="session")
def tiny_budget_export_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model (64 positions) exported with max_batch_tokens=128: two full rows a request."""
    from tfkosent.export import export_model
    return export_model(tiny_model_dir, str(tmp_path_factory.mktemp("exports") / "tiny_budget"),
                        max_batch_tokens=128)
