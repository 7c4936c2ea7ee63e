"""Shared fixtures: a clean command line, a scratch working directory, tiny configs.

RecBole writes ``log/`` and ``log_tensorboard/`` into the current directory and checkpoints into
``checkpoint_dir``; every test runs with ``sys.argv == ['pytest']`` (RecBole's own Config reads
``--key=value`` from it) inside its own ``tmp_path``, so nothing lands in the repository.
"""

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest
import recbole.data.dataset.dataset
import torch

# Ray, started by the tests (locally, or a head with `ray start`), listens on loopback only
# (on Linux Ray otherwise advertises and binds the machine's network address).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import recbole_diffusion  # noqa: F401  (installs the plugin's RecBole hooks)

# The suite runs on 2 cores, often beside a benchmark: with torch's default of one intra-op thread
# per core, contended tensor ops slow down by orders of magnitude; one thread keeps runs short.
torch.set_num_threads(1)


def pytest_configure(config):
    # Raised by RecBole 1.2.1's own code under pandas 2 / NumPy 2 on every run (the plugin's runs
    # silence them in recbole_diffusion.hooks; pytest resets the filters for each test).
    for warning in (
        "ignore:A value is trying to be set on a copy:FutureWarning",
        "ignore:__array_wrap__ must accept context:DeprecationWarning",
        "ignore:`torch.cuda.amp.GradScaler:FutureWarning",
        "ignore:distutils Version classes are deprecated:DeprecationWarning",  # thop, RecBole's FLOPs count
    ):
        config.addinivalue_line("filterwarnings", warning)


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    """No RecBole ``--key=value`` from pytest's own command line; logs go to ``tmp_path``."""
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fail the test if any dataset starts loading."""

    def forbidden(self, *args, **kwargs):
        raise AssertionError("a dataset was loaded before the request was refused")

    monkeypatch.setattr(recbole.data.dataset.dataset.Dataset, "__init__", forbidden)


ENTRY = Path(__file__).resolve().parents[1] / "run_recbole_diffusion.py"


@pytest.fixture(scope="session")
def entry_path():
    """The entry script's file, for the tests that run it as a process."""
    return ENTRY


@pytest.fixture(scope="session")
def entry_script():
    """The entry script as a module (its ``main`` runs in this process, without a fresh import)."""
    spec = importlib.util.spec_from_file_location("run_recbole_diffusion", ENTRY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_entry(entry_script, monkeypatch):
    """``run_entry(*args)``: the entry script's ``main`` on ``args`` in this process; returns what it
    exits with: ``None`` for success, else the line it prints on stderr (Python exits 1 with it).
    A test of the process itself (exit status, signals, a traceback-free stderr) runs the script."""

    def run(*args):
        monkeypatch.setattr(sys, "argv", [str(ENTRY), *args])
        try:
            entry_script.main()
        except SystemExit as done:
            assert done.code is None or isinstance(done.code, str), f"exit status {done.code!r}, not a one-line error"
            return done.code
        return None

    return run


@pytest.fixture
def free_port():
    """A loopback TCP port that was free a moment ago (for a process group or a Ray head)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def wait_until():
    """``wait_until(condition, what)``: poll ``condition()`` until it is true; a test that waits for
    a process to reach a point fails naming that point, not later on what is missing. The default
    limit only guards against a hang (a loaded machine is slow, not wrong); a test whose claim is
    a bound ("ended at once") gives its own."""

    def wait(condition, what, limit_s=600):
        deadline = time.monotonic() + limit_s
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"not within {limit_s} s: {what}")
            time.sleep(0.2)

    return wait


@pytest.fixture
def checkpoint_dir(tmp_path):
    return tmp_path / "saved"


@pytest.fixture(scope="session")
def small_hpmn():
    """HPMN's keys for a quick ml-100k run: 8-wide, 2 memory layers, and few, wide batches (its
    recurrence steps once per batch)."""
    return {
        "MAX_ITEM_LIST_LENGTH": 20, "embedding_size": 8, "hidden_size": 8, "mlp_hidden_size": [8], "attention_hidden_size": [8],
        "memory_layers": 2, "memory_periods": [1, 4], "train_batch_size": 4096,
    }


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
