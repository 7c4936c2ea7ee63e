"""Runs a user can trust: data-only checkpoints, no silent typos, loud divergence, clear CLI errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import recbole.config
import torch

from recbole_diffusion.config import Config
from recbole_diffusion.config.arguments import parse_command_line, parse_value
from recbole_diffusion.quick_start import build, load_data_and_model, run_recbole_diffusion
from recbole_diffusion.trainer import TrainingDivergedError
from recbole_diffusion.utils import ConfigError
from recbole_diffusion.utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


# --- checkpoints ---------------------------------------------------------------------------------


class ConfigPayload:
    """Unpickles as RecBole's Config whose config_dict string RecBole's eval() would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        command = f"__import__('pathlib').Path({str(self.marker)!r}).touch()"
        return recbole.config.Config, ("Pop", "ml-100k", None, {"x": command})


class SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload", [ConfigPayload, SystemPayload])
def test_crafted_checkpoint_neither_runs_nor_loads(tmp_path, payload, tiny_config):
    marker = tmp_path / "pwned"
    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    genuine = torch.load(result["saved_model_file"], weights_only=True)
    crafted = tmp_path / "crafted.pth"
    torch.save({**genuine, "config": payload(marker)}, crafted)  # a real model inside, loads fine otherwise

    with pytest.raises(CheckpointError, match="crafted.pth"):
        load_data_and_model(str(crafted))
    config = Config(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    _, (_, _, test_data), _, trainer = build(config)
    with pytest.raises(CheckpointError, match="holds Python objects"):
        trainer.evaluate(test_data, model_file=str(crafted))
    assert not marker.exists()


@pytest.mark.parametrize("model", ["ItemKNN", "EASE"])
def test_numpy_and_scipy_state_round_trips_to_identical_scores(model, tiny_config):
    config = Config(model=model, dataset="ml-100k", config_dict=tiny_config())
    _, (train_data, valid_data, test_data), net, trainer = build(config)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    trainer.evaluate(test_data, load_best_model=True)
    users = torch.arange(1, 33)
    interaction = {net.USER_ID: users}
    expected = net.full_sort_predict(interaction)

    _, loaded, *_ = load_data_and_model(trainer.saved_model_file)
    assert torch.equal(loaded.full_sort_predict(interaction), expected)


def test_bad_files_fail_naming_the_file(tmp_path, tiny_config):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth.*empty \(0 bytes\)"):
        load_checkpoint(empty)

    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    data = Path(result["saved_model_file"]).read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth.*cannot be read"):
        load_checkpoint(truncated)

    old = tmp_path / "old.pth"  # the previous format: a pickled Config object
    torch.save({"config": Config(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())}, old)
    with pytest.raises(CheckpointError, match=r"old\.pth.*holds Python objects"):
        load_checkpoint(old)

    other = tmp_path / "other.pth"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match=r"other\.pth.*format None"):
        load_checkpoint(other)

    with pytest.raises(CheckpointError, match=r"missing\.pth.*no such file"):
        load_checkpoint(tmp_path / "missing.pth")


def test_checkpoint_trained_on_cuda_loads_on_cpu(tmp_path, tiny_config):
    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    checkpoint = load_checkpoint(result["saved_model_file"])
    checkpoint["config"]["final_config_dict"].update(device={"__device__": "cuda:0"}, use_gpu=True)
    del checkpoint["format"]
    moved = tmp_path / "cuda.pth"
    save_checkpoint(checkpoint, str(moved))

    config, model, *_ = load_data_and_model(str(moved), device=None if not torch.cuda.is_available() else "cpu")
    assert config["device"] == torch.device("cpu") and not config["use_gpu"]
    assert next(model.parameters()).device.type == "cpu"


def test_nothing_half_written_is_left(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pth"

    def broken_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"state_dict": {}}, str(target))
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_is_created_with_the_umasks_mode(tmp_path):
    umask = os.umask(0o027)
    try:
        save_checkpoint({"state_dict": {}}, str(tmp_path / "ckpt.pth"))
    finally:
        os.umask(umask)
    assert (tmp_path / "ckpt.pth").stat().st_mode & 0o777 == 0o640  # not a temporary file's 0600


# --- configs -------------------------------------------------------------------------------------


def test_typo_names_the_nearest_key(no_data_loading):
    with pytest.raises(ConfigError, match=r"'nosie_scale' = 0\.1 is not a key of DiffRec.*did you mean 'noise_scale'"):
        Config(model="DiffRec", dataset="ml-100k", config_dict={"nosie_scale": 0.1})
    with pytest.raises(ConfigError, match="'n_layers' = 2 is not a key of DiffRec"):
        Config(model="DiffRec", dataset="ml-100k", config_dict={"n_layers": 2})  # another model's key


def test_typo_in_a_config_file_is_caught(tmp_path, no_data_loading):
    path = tmp_path / "my.yaml"
    path.write_text("learning_rat: 0.01\n")
    with pytest.raises(ConfigError, match="'learning_rat'.*did you mean 'learning_rate'"):
        Config(model="BPR", dataset="ml-100k", config_file_list=[str(path)])


def test_declared_keys_pass(no_data_loading):
    config = Config(model="BPR", dataset="ml-100k", config_dict={"my_flag": 3, "extra_config_keys": ["my_flag"]})
    assert config["my_flag"] == 3


@pytest.mark.parametrize(
    "model, key, value, rule",
    [
        ("DiffRec", "epochs", "abc", "must be an integer"),
        ("DiffRec", "epochs", 0, ">= 1"),
        ("DiffRec", "eval_step", -1, ">= 0"),
        ("DiffRec", "stopping_step", 0, ">= 1"),
        ("DiffRec", "learning_rate", -1, "finite number > 0"),
        ("DiffRec", "learning_rate", float("inf"), "finite number > 0"),
        ("LDiffRec", "lr1", 0, "finite number > 0"),
        ("DiffRec", "train_batch_size", 0, ">= 1"),
        ("DiffRec", "eval_batch_size", 0, ">= 1"),
        ("DiffRec", "dropout", 1.5, r"\[0, 1\)"),
        ("SASRec", "hidden_dropout_prob", -0.1, r"\[0, 1\)"),
        ("SASRec", "MAX_ITEM_LIST_LENGTH", 0, ">= 1"),
        ("DiffRec", "noise_scale", "abc", "must be a number"),
        ("DiffRec", "dims_dnn", [0], "integers >= 1"),
        ("BPR", "embedding_size", 0, "integers >= 1"),
        ("DiffRec", "reweight", "yes", "True or False"),
        ("DiffRec", "weight_decay", -0.1, ">= 0"),
    ],
)
def test_generic_values_fail_before_data_naming_key_and_value(model, key, value, rule, no_data_loading):
    with pytest.raises(ConfigError, match=rf"'{key}' = {repr(value).replace('[', '.').replace(']', '.')}: .*{rule}"):
        Config(model=model, dataset="ml-100k", config_dict={key: value})


def test_cross_entropy_sequential_models_need_no_sampling_setting(no_data_loading):
    config = Config(model="SASRec", dataset="ml-100k")
    assert config["loss_type"] == "CE" and config["train_neg_sample_args"]["distribution"] == "none"
    with pytest.raises(ConfigError, match="'train_neg_sample_args'.*CE"):
        Config(model="SASRec", dataset="ml-100k", config_dict={"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})


def test_command_line_values_are_literals_never_code(tmp_path):
    marker = tmp_path / "pwned"
    assert parse_value(f"__import__('os').system('touch {marker}')") == f"__import__('os').system('touch {marker}')"
    assert not marker.exists()
    assert parse_value("[600, 200]") == [600, 200] and parse_value("TRUE") is True and parse_value("1e-3") == 0.001
    assert parse_value("[Recall,NDCG]") == ["Recall", "NDCG"] and parse_value("{uniform: 1}") == {"uniform": 1}
    assert parse_value("[!!python/object/apply:os.system ['touch x']]") == "[!!python/object/apply:os.system ['touch x']]"
    assert parse_value("[unclosed") == "[unclosed"
    args, overrides = parse_command_line(["--model=BPR", "--epochs=3", "--resume", "--noise_scale=0.1"])
    assert args.model == "BPR" and args.resume and overrides == {"epochs": 3, "noise_scale": 0.1}
    with pytest.raises(ConfigError, match="'--epochs'.*--key=value"):
        parse_command_line(["--epochs", "5"])
    with pytest.raises(ConfigError, match="--epochs twice"):
        parse_command_line(["--epochs=5", "--epochs=6"])


def test_entry_script_fails_with_one_line(tmp_path, run_entry, no_data_loading, entry_path):
    typo = subprocess.run(
        [sys.executable, str(entry_path), "--model=DiffRec", "--nosie_scale=0.1"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert typo.returncode == 1 and typo.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in typo.stderr
    assert "did you mean 'noise_scale'" in typo.stderr
    assert "'epochs' = 'abc'" in run_entry("--model=DiffRec", "--epochs=abc")
    assert not (tmp_path / "saved").exists()


# --- divergence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1e30, 1e6])
def test_divergence_stops_the_run_naming_the_learning_rate(rate, tiny_config, checkpoint_dir):
    config = tiny_config(learning_rate=rate, epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, batch \d+: loss = .*Lower the learning rate") as info:
        run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=config)
    assert f"learning_rate = {rate!r}" in str(info.value)
    assert not checkpoint_dir.exists() or not any(checkpoint_dir.iterdir())


def test_a_normal_run_is_not_called_diverged(tiny_config):
    result = run_recbole_diffusion(model="BPR", dataset="ml-100k", config_dict=tiny_config(epochs=3))
    assert np.isfinite(result["best_valid_score"])
