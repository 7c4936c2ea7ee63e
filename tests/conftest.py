"""Shared fixtures: a clean command line, a scratch working directory, tiny configs.

RecBole writes ``log/`` and ``log_tensorboard/`` into the current directory and checkpoints into
``checkpoint_dir``; every test runs with ``sys.argv == ['pytest']`` (RecBole's own Config reads
``--key=value`` from it) inside its own ``tmp_path``, so nothing lands in the repository.
"""

import sys

import pytest
import torch

import recbole_diffusion  # noqa: F401  (installs the plugin's RecBole hooks)

# The suite runs on 2 cores, often beside a benchmark: with torch's default of one intra-op thread
# per core, contended tensor ops slow down by orders of magnitude; one thread keeps runs short.
torch.set_num_threads(1)


def pytest_configure(config):
    # Raised inside RecBole's dependencies under numpy 1.26 (RecBole's own: recbole_diffusion.hooks).
    for warning in (
        "ignore:distutils Version classes are deprecated:DeprecationWarning",
        "ignore:pkg_resources is deprecated:UserWarning",
        "ignore:`np.bool8` is a deprecated alias:DeprecationWarning",
    ):
        config.addinivalue_line("filterwarnings", warning)


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    """No RecBole ``--key=value`` from pytest's own command line; logs go to ``tmp_path``."""
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def checkpoint_dir(tmp_path):
    return tmp_path / "saved"


@pytest.fixture
def tiny_config(checkpoint_dir):
    """A factory of small ml-100k configs: one epoch, a 16-wide denoiser, 5 diffusion steps."""

    def make(**overrides):
        config = {
            "epochs": 1,
            "eval_step": 1,
            "stopping_step": 10,
            "dims_dnn": [16],
            "embedding_size": 4,
            "steps": 5,
            "train_batch_size": 256,
            "show_progress": False,
            "checkpoint_dir": str(checkpoint_dir),
            "seed": 2020,
            "reproducibility": True,
            # the tiny DiffRec sizes above; models without these keys (BPR, SASRec ...) ignore them
            "extra_config_keys": ["dims_dnn", "embedding_size", "steps"],
        }
        config.update(overrides)
        return config

    return make
