"""The plugin inside RecBole's own entry points, and RecBole's models through the plugin's."""

import json
import os
import subprocess
import sys

import pytest

import recbole.data.utils
import recbole.model.general_recommender.diffrec
import recbole.quick_start
import recbole.trainer
import recbole.utils
from recbole.config import Config as RecBoleConfig
from recbole.data.dataloader import FullSortEvalDataLoader, UserDataLoader
from recbole.utils import ModelType

import recbole_diffusion.quick_start.quick_start as plugin_quick_start
import recbole_diffusion.trainer.trainer as plugin_trainer
import recbole_diffusion.utils
from recbole_diffusion.model.general_recommender.diffrec import DiffRec
from recbole_diffusion.model.general_recommender.tdiffrec import TDiffRec
from recbole_diffusion.quick_start import load_data_and_model, run_recbole_diffusion
from recbole_diffusion.trainer import SafeTrainingMixin

RECBOLE_DIFFREC = recbole.model.general_recommender.diffrec.DiffRec


def test_recbole_get_model_knows_new_names_and_keeps_its_own():
    assert recbole.utils.get_model("TDiffRec") is TDiffRec
    assert recbole.utils.get_model("DiffRec") is RECBOLE_DIFFREC
    assert RECBOLE_DIFFREC is not DiffRec


def test_plugin_get_model_prefers_the_plugin():
    assert recbole_diffusion.utils.get_model("DiffRec") is DiffRec
    assert recbole_diffusion.utils.get_model("TDiffRec") is TDiffRec
    assert recbole_diffusion.utils.get_model("recbole.DiffRec") is RECBOLE_DIFFREC
    assert recbole_diffusion.utils.get_model("BPR") is recbole.utils.get_model("BPR")


def test_recbole_trainer_is_registered_with_safe_training():
    trainer = recbole.utils.get_trainer(ModelType.GENERAL, "TDiffRec")
    assert trainer is recbole.trainer.TDiffRecTrainer
    assert issubclass(trainer, SafeTrainingMixin) and issubclass(trainer, recbole.trainer.Trainer)
    assert not hasattr(recbole.trainer, "DiffRecTrainer")  # RecBole's DiffRec keeps RecBole's choice


def test_recbole_dataloader_choice_for_plugin_models(tiny_config):
    config = RecBoleConfig(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config())
    assert config.model_class is TDiffRec
    # The plugin's yaml defaults were loaded (TDiffRec's and its base DiffRec's, not RecBole's DiffRec.yaml).
    assert config["w_min"] == 0.5 and config["noise_schedule"] == "linear-var" and config["steps"] == 5
    assert recbole.data.utils.get_dataloader(config, "train") is UserDataLoader
    assert recbole.data.utils.get_dataloader(config, "valid") is FullSortEvalDataLoader
    # RecBole's own non-AE models keep RecBole's choice.
    bpr = RecBoleConfig(model="BPR", dataset="ml-100k", config_dict=tiny_config())
    assert recbole.data.utils.get_dataloader(bpr, "train") is not UserDataLoader


def test_recbole_run_recbole_trains_a_plugin_model(tiny_config, checkpoint_dir, monkeypatch):
    loaded = []
    real_load = plugin_trainer.load_checkpoint
    monkeypatch.setattr(plugin_trainer, "load_checkpoint", lambda path, **kw: loaded.append(path) or real_load(path, **kw))
    result = recbole.quick_start.run_recbole(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config())
    saved = list(checkpoint_dir.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("TDiffRec-")
    assert loaded == [str(saved[0])]  # the best checkpoint was reloaded by the plugin's trainer
    for key in ("recall@10", "recall@20", "ndcg@10", "hit@10", "mrr@10"):
        assert 0.0 <= result["test_result"][key] <= 1.0


def test_builtin_diffrec_through_the_plugin(tiny_config, monkeypatch):
    built = []
    real_build = plugin_quick_start.build

    def spy_build(config):
        out = real_build(config)
        built.append(out[2])
        return out

    monkeypatch.setattr(plugin_quick_start, "build", spy_build)
    result = run_recbole_diffusion(model="recbole.DiffRec", dataset="ml-100k", config_dict=tiny_config())
    assert result["model"] == "recbole.DiffRec"
    assert len(built) == 1 and type(built[0]) is RECBOLE_DIFFREC
    assert 0.0 <= result["test_result"]["recall@10"] <= 1.0  # RecBole's own defaults (topk [10]) apply
    # Its checkpoint loads back (weights-only) into RecBole's class.
    config, model, *_ = load_data_and_model(result["saved_model_file"])
    assert type(model) is RECBOLE_DIFFREC and config.model_label == "recbole.DiffRec"


def test_entry_script_runs(tmp_path, checkpoint_dir, entry_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            str(entry_path),
            "--model=DiffRec",
            "--dataset=ml-100k",
            "--epochs=1",
            "--dims_dnn=[16]",
            "--embedding_size=4",
            "--steps=5",
            "--train_batch_size=256",
            "--show_progress=False",
            f"--checkpoint_dir={checkpoint_dir}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "test result" in output
    assert len(list(checkpoint_dir.glob("DiffRec-*.pth"))) == 1
    assert (tmp_path / "log").is_dir()  # RecBole's logs went to the working directory, not the repo


def test_din_checkpoint_reloads_weights_only(checkpoint_dir):
    """RecBole's DIN lists a submodule as an 'other parameter': the checkpoint still loads weights-only."""
    import torch

    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start import build

    config = Config(
        model="DIN",
        dataset="ml-100k",
        config_dict={"MAX_ITEM_LIST_LENGTH": 5, "mlp_hidden_size": [8], "checkpoint_dir": str(checkpoint_dir), "show_progress": False},
    )
    _, (_, _, test_data), model, trainer = build(config)
    embedding_layer = model.embedding_layer
    trainer._save_checkpoint(0, verbose=False)
    saved = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    trainer._load_model_state(trainer.saved_model_file)
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())
    assert model.embedding_layer is embedding_layer  # still the registered submodule, not a pickled copy
    result = trainer.evaluate(test_data, load_best_model=True)
    assert 0.0 <= result["auc"] <= 1.0


def test_checkpoint_evaluates_in_a_fresh_process(tiny_config, tmp_path):
    """load_data_and_model alone (no Config built in the process) evaluates to the same metrics."""
    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config(metrics=["Recall", "NDCG"]))
    code = (
        "import json, sys; import recbole_diffusion\n"
        "from recbole_diffusion.quick_start import load_data_and_model\n"
        "from recbole_diffusion.utils import get_trainer\n"
        "config, model, _, _, _, test_data = load_data_and_model(sys.argv[1])\n"
        "trainer = get_trainer(config['MODEL_TYPE'], config['model'], config.model_class)(config, model)\n"
        "print('RESULT ' + json.dumps(dict(trainer.evaluate(test_data, load_best_model=False))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, result["saved_model_file"]],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    reloaded = json.loads(completed.stdout.split("RESULT ", 1)[1])
    assert reloaded == pytest.approx(dict(result["test_result"]), abs=1e-4)
