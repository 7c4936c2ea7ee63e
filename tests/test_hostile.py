"""A hostile user's inputs: no file or flag runs code, no command deletes data, no run lies about its result.

Each code-execution test plants a payload that would create a marker file, runs the documented
path, and asserts the marker is absent (and, where the input is refused, the message names it).
"""

import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import recbole
import recbole.trainer.trainer
import torch
import yaml

from recbole_diffusion.config import Config
from recbole_diffusion.data.convert import ConvertError, diffrec_to_atomic, main as convert_main
from recbole_diffusion.quick_start import build, load_data_and_model, run_recbole_diffusion
from recbole_diffusion.quick_start.compare import compare, read_model_config
from recbole_diffusion.quick_start.report import append_jsonl, read_jsonl
from recbole_diffusion.quick_start.tune import RECORD_FILE, SearchError, _trials_table, load_search_space, run_search
from recbole_diffusion.utils import ConfigError
from recbole_diffusion.utils.checkpoint import load_checkpoint, save_checkpoint

ML100K = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"


def touch_code(marker):
    """Python that creates ``marker``, as a string RecBole would eval."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch() or CrossNet"


class Payload:
    """Unpickles by creating a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# --- code execution ---------------------------------------------------------------------------


def test_kd_dagfm_teacher_from_a_flag_is_refused(tmp_path, no_data_loading):
    marker = tmp_path / "marker"
    with pytest.raises(ConfigError, match="'teacher'.*must be one of \\['CrossNet', 'CIN'\\]"):
        run_recbole_diffusion(model="KD_DAGFM", dataset="ml-100k", config_dict={"teacher": touch_code(marker), "epochs": 1})
    assert not marker.exists()


def test_kd_dagfm_teacher_from_a_search_space_is_refused_before_any_trial(tmp_path):
    marker = tmp_path / "marker"
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 1, "config": {"epochs": 1}, "space": {"teacher": {"choice": ["CIN", touch_code(marker)]}}}))
    with pytest.raises(ConfigError, match="search space .*choice value of key 'teacher'"):
        run_search("KD_DAGFM", "ml-100k", str(space), storage_path=str(tmp_path / "ray"))
    assert not marker.exists() and not (tmp_path / "ray").exists()


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system"])
def test_a_config_file_holding_python_objects_is_refused(tmp_path, tag, no_data_loading):
    marker = tmp_path / "marker"
    config_file = tmp_path / "evil.yaml"
    config_file.write_text(f'epochs: {tag} ["touch {marker}"]\n' if "apply" in tag else f"epochs: {tag}\n")
    with pytest.raises(ConfigError, match="config file '.*evil.yaml': not plain YAML data"):
        Config(model="DiffRec", dataset="ml-100k", config_file_list=[str(config_file)])
    assert not marker.exists()


def test_a_model_config_file_holding_python_objects_is_refused(tmp_path):
    marker = tmp_path / "marker"
    config_file = tmp_path / "models.yaml"
    config_file.write_text(f'BPR: {{epochs: !!python/object/apply:os.system ["touch {marker}"]}}\n')
    with pytest.raises(ConfigError, match="--model_config=.*models.yaml: not plain YAML data"):
        read_model_config(str(config_file), ["BPR", "EASE"])
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("Pop: {epochs: 1}\n", r"Pop not among the compared models \(BPR, EASE\)"),
        ("BPR: 1\n", "give one section of keys per model"),
        ("- BPR\n", "give one section of keys per model"),
        ("BPR: {embedding_sise: 8}\n", "embedding_sise"),
    ],
)
def test_a_bad_model_config_fails_in_one_line_before_any_data(tmp_path, text, message, run_entry, no_data_loading):
    (tmp_path / "models.yaml").write_text(text)
    error = run_entry("--compare=BPR,EASE", "--model_config=models.yaml", "--output=out")
    assert error.startswith("error: ") and "\n" not in error and re.search(message, error), error


def crafted_checkpoint(path, tiny_config, **stored):
    """A genuine DiffRec checkpoint whose stored config is changed as ``stored`` says."""
    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    checkpoint = load_checkpoint(result["saved_model_file"])
    checkpoint["config"]["final_config_dict"].update(stored.pop("final", {}))
    checkpoint["config"].update(stored)
    save_checkpoint({key: value for key, value in checkpoint.items() if key != "format"}, path)
    return path


def test_kd_dagfm_teacher_stored_in_a_checkpoint_is_refused(tmp_path, tiny_config):
    marker = tmp_path / "marker"
    path = crafted_checkpoint(
        tmp_path / "crafted.pth", tiny_config, model_spec="KD_DAGFM", final={"model": "KD_DAGFM", "teacher": touch_code(marker)}
    )
    with pytest.raises(ConfigError, match="checkpoint '.*crafted.pth': stored config key 'teacher'"):
        load_data_and_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("key", ["dataset_save_path", "dataloaders_save_path"])
def test_a_cache_path_stored_in_a_checkpoint_is_refused(tmp_path, tiny_config, key):
    marker, cache = tmp_path / "marker", tmp_path / "cache.pth"
    cache.write_bytes(pickle.dumps(Payload(marker)))
    path = crafted_checkpoint(tmp_path / "crafted.pth", tiny_config, final={key: str(cache)})
    with pytest.raises(ConfigError, match=f"stored config key '{key}'.*pickles"):
        load_data_and_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("key, value", [("dataset_save_path", "x.pth"), ("save_dataset", True), ("save_dataloaders", True)])
def test_cache_keys_are_refused_before_any_data(key, value, no_data_loading):
    with pytest.raises(ConfigError, match=f"config key '{key}'.*pickles"):
        Config(model="DiffRec", dataset="ml-100k", config_dict={key: value})


@pytest.mark.parametrize("cache", ["ml-100k-Dataset.pth", "ml-100k-for-DiffRec-dataloader.pth"])
def test_a_cache_file_in_the_checkpoint_folder_is_never_unpickled(tmp_path, tiny_config, checkpoint_dir, cache):
    marker = tmp_path / "marker"
    checkpoint_dir.mkdir(parents=True)
    (checkpoint_dir / cache).write_bytes(pickle.dumps(Payload(marker)))
    result = run_recbole_diffusion(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    assert not marker.exists() and result["test_result"]
    # RecBole's own entry points, once the plugin is imported, do not load it either
    from recbole.data import create_dataset, data_preparation

    config = recbole.config.Config(model="BPR", dataset="ml-100k", config_dict={"checkpoint_dir": str(checkpoint_dir)})
    data_preparation(config, create_dataset(config))
    assert not marker.exists()


def test_recboles_ldiffrec_refuses_an_embedding_file_holding_objects(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    (folder / "mine.inter").write_text("\n".join(ML100K.read_text().splitlines()[:2001]) + "\n")
    np.save(folder / "item_emb.npy", np.array([Payload(tmp_path / "marker")], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="item_emb.npy', which holds Python objects"):
        Config(model="recbole.LDiffRec", dataset="mine", config_dict={"data_path": str(tmp_path / "data"), "n_cate": 2})
    assert not (tmp_path / "marker").exists()


def test_a_received_comparison_folder_is_not_unpickled(tmp_path, no_data_loading):
    """A tuning folder that this user did not make (no record, or an interrupted one) is not restored."""
    marker = tmp_path / "marker"
    experiment = tmp_path / "out" / "tuning" / "DiffRec"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(SearchError, match="nothing was resumed"):
        compare(["DiffRec"], "ml-100k", output_dir=str(tmp_path / "out"), tune_trials=1, config_dict={"epochs": 1})
    (experiment / RECORD_FILE).write_text('{"settings": {}, "best": null}')  # what an interrupted search leaves
    with pytest.raises(SearchError, match="other settings"):
        compare(["DiffRec"], "ml-100k", output_dir=str(tmp_path / "out"), tune_trials=1, config_dict={"epochs": 1})
    assert not marker.exists()


def test_an_interrupted_search_is_restored_only_when_asked(tmp_path, monkeypatch):
    """The same settings, not finished: refused without --resume (Ray's state is pickles)."""
    import recbole_diffusion.quick_start.tune as tune_module

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 1, "config": {"epochs": 1}, "space": {"learning_rate": {"choice": [0.001]}}}))
    seen = {}
    monkeypatch.setattr(tune_module, "stored_search", lambda experiment, settings: seen.setdefault("settings", settings) and None)
    (tmp_path / "ray" / "s").mkdir(parents=True)
    with pytest.raises(SearchError, match="interrupted earlier.*--resume"):
        run_search("DiffRec", "ml-100k", str(space), storage_path=str(tmp_path / "ray"), name="s", reuse=True)
    assert seen["settings"]["model"] == "DiffRec"


# --- the resumed search ranks on the run it tested ----------------------------------------------


def test_a_resumed_trial_is_scored_on_its_whole_run_not_on_rays_history_since_the_restart(tmp_path):
    """Ray keeps a restored trial's reports from the restart on only; its best validation came before."""
    since_restart = pd.DataFrame({"valid_score": [0.07, 0.06], "epoch": [25, 30]})
    latest = {"valid_score": 0.06, "epoch": 30, "best_epoch": 10, "best_valid_score": 0.16, "validations": 6, "trial_id": "t"}
    result = SimpleNamespace(
        config={"learning_rate": 0.001}, metrics=latest, metrics_dataframe=since_restart, error=None, path=str(tmp_path / "_trial_0a_1_lr")
    )
    space = {"learning_rate": {"choice": [0.001]}}
    row = _trials_table([result], space, {"learning_rate": 0.001}, str(tmp_path)).iloc[0]
    assert (row.valid_score, row.best_epoch, row.validations, row.epochs) == (0.16, 10, 6, 30)
    assert row.status == "stopped early" and bool(row.defaults)


def test_a_resume_with_other_settings_is_refused_naming_them(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 1, "config": {"epochs": 1}, "space": {"learning_rate": {"choice": [0.001]}}}))
    experiment = tmp_path / "ray" / "s"
    experiment.mkdir(parents=True)
    (experiment / RECORD_FILE).write_text(
        '{"settings": {"model": "DiffRec", "space": {"num_samples": 1}, "config": {"epochs": 1}, "config_files": []}, "best": null}'
    )
    with pytest.raises(SearchError, match=r"other settings \(.*config.steps.*space.config.*\)"):
        run_search("DiffRec", "ml-100k", str(space), storage_path=str(tmp_path / "ray"), name="s", resume=True, config_dict={"steps": 5})


# --- two runs sharing a checkpoint folder --------------------------------------------------------


def test_runs_started_in_the_same_second_write_their_own_checkpoints(tiny_config, monkeypatch):
    monkeypatch.setattr(recbole.trainer.trainer, "get_local_time", lambda: "Dec-01-2026_10-00-00")
    names = set()
    for seed in (1, 2):
        config = Config(model="DiffRec", dataset="ml-100k", config_dict=tiny_config(seed=seed))
        names.add(build(config)[3].saved_model_file)
    assert len(names) == 2


# --- run logs --------------------------------------------------------------------------------------


def test_a_torn_last_row_of_a_run_log_is_skipped_and_the_next_row_lands_whole(tmp_path):
    log = tmp_path / "runs.jsonl"
    log.write_text('{"model": "A", "seed": 1}\n{"model": "B", "se')
    with pytest.warns(UserWarning, match="runs.jsonl, line 2: an incomplete last row"):
        assert read_jsonl(str(log)) == [{"model": "A", "seed": 1}]
    append_jsonl(str(log), {"model": "C", "seed": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_jsonl(str(log)) == [{"model": "A", "seed": 1}, {"model": "C", "seed": 3}]


def test_a_broken_row_inside_a_run_log_is_named(tmp_path):
    log = tmp_path / "runs.jsonl"
    log.write_text('{"model": "A", "seed": 1}\nnot json\n{"model": "C", "seed": 3}\n')
    with pytest.raises(ConfigError, match="runs.jsonl, line 2: not a JSON row"):
        read_jsonl(str(log))


# --- requests that do nothing, or forever ---------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nproc=0"], "--nproc=0: give the number of processes"),
        (["--nproc=-1"], "--nproc=-1"),
        (["--compare=DiffRec,DiffRec"], "names DiffRec more than once"),
        (["--compare=DiffRec,BPR", "--tune_trials=0", "--output=out"], "--tune_trials=0: give an integer >= 1"),
        (["--compare=DiffRec,BPR", "--tune_trials=-1", "--output=out"], "--tune_trials=-1"),
        (["--compare=DiffRec,BPR", "--jobs=0"], "--jobs=0: give the number of runs to train at once"),
        (["--model=DiffRec", "--jobs=2"], "--jobs: only with --compare"),
        (["--compare=DiffRec,BPR", "--reference=EASE", "--tune_trials=1", "--output=out"], "--reference 'EASE' is not one"),
        (["--compare=DiffRec,BPR", "--output=out/file/x"], "--output=out/file/x: cannot be created"),
        (["--model=DifRec"], "model 'DifRec' is neither .* did you mean DiffRec"),
        (["--model=DiffRec", "--valid_metric=foo@10"], "'valid_metric' = 'foo@10': must be one of the metrics"),
    ],
)
def test_a_pointless_request_fails_in_one_line_before_any_data(tmp_path, args, message, run_entry, no_data_loading):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "file").write_text("")
    error = run_entry(*args)
    assert error.startswith("error: ") and "\n" not in error and re.search(message, error), error


def test_a_search_space_of_no_trials_or_endless_trials_is_refused(tmp_path):
    for samples in (0, -1):
        space = tmp_path / "space.yaml"
        space.write_text(yaml.safe_dump({"num_samples": samples, "space": {"learning_rate": {"choice": [0.001]}}}))
        with pytest.raises(ConfigError, match=f"num_samples = {samples} must be an integer >= 1"):
            load_search_space(str(space))


# --- data that RecBole would misread ------------------------------------------------------------


def own_dataset(tmp_path, lines, name="mine"):
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return {"data_path": str(tmp_path / "data"), "epochs": 1, "show_progress": False, "checkpoint_dir": str(tmp_path / "saved")}


def test_one_interaction_per_user_stops_with_the_empty_split_named(tmp_path):
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"] + [f"{u}\t{u % 7}\t4\t{u}" for u in range(50)]
    config = own_dataset(tmp_path, lines)
    with pytest.raises(ConfigError, match=r"dataset 'mine' \(.*mine.inter\): the validation split is empty"):
        run_recbole_diffusion(model="DiffRec", dataset="mine", config_dict=config)


@pytest.mark.parametrize("time", ["", "nan", "NaN"])
def test_a_missing_timestamp_stops_with_file_field_and_line(tmp_path, time):
    lines = ML100K.read_text().splitlines()[:500]
    fields = lines[5].split("\t")
    fields[3] = time
    lines[5] = "\t".join(fields)
    config = own_dataset(tmp_path, lines)
    with pytest.raises(ConfigError, match=r"mine.inter', line 6: field 'timestamp:float' = .* is not a time"):
        run_recbole_diffusion(model="TDiffRec", dataset="mine", config_dict=config)


def test_a_row_with_extra_fields_stops_with_file_and_line(tmp_path):
    lines = ML100K.read_text().splitlines()[:500]
    lines[9] += "\textra"
    config = own_dataset(tmp_path, lines)
    with pytest.raises(ConfigError, match=r"mine.inter', line 10: 5 fields where its header has 4"):
        run_recbole_diffusion(model="DiffRec", dataset="mine", config_dict=config)


# --- the converter deletes nothing of the user's ---------------------------------------------------


@pytest.fixture
def authors_split(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for split in ("train", "valid", "test"):
        np.save(src / f"{split}_list.npy", np.array([[0, 1], [1, 2], [2, 0]], dtype=np.int64))
    return src


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/tmp"])
def test_a_name_that_is_not_one_folder_is_refused_and_siblings_survive(tmp_path, authors_split, name):
    out = tmp_path / "datasets"
    (out / "other").mkdir(parents=True)
    (out / "other" / "keep.txt").write_text("mine")
    (tmp_path / "sibling.txt").write_text("mine")
    assert convert_main(["diffrec", str(authors_split), str(out), "--name", name]) == 1
    assert (out / "other" / "keep.txt").read_text() == "mine" and (tmp_path / "sibling.txt").exists()
    assert sorted(p.name for p in authors_split.iterdir()) == ["test_list.npy", "train_list.npy", "valid_list.npy"]


def test_a_conversion_whose_source_is_its_target_is_refused_and_the_source_survives(tmp_path, authors_split):
    with pytest.raises(ConvertError, match="the source lies inside the target"):
        diffrec_to_atomic(str(authors_split), str(tmp_path), "src")
    assert len(list(authors_split.glob("*_list.npy"))) == 3


def test_reconverting_keeps_the_users_other_files(tmp_path, authors_split):
    out = tmp_path / "datasets"
    diffrec_to_atomic(str(authors_split), str(out), "mine")
    diffrec_to_atomic(str(authors_split), str(out), "mine")  # only its own files there: replaced
    (out / "mine" / "item_emb.npy").write_bytes(b"the user's")
    with pytest.raises(ConvertError, match="holds files this conversion did not write \\(item_emb.npy\\)"):
        diffrec_to_atomic(str(authors_split), str(out), "mine")
    assert (out / "mine" / "item_emb.npy").read_bytes() == b"the user's" and (out / "mine" / "mine.train.inter").exists()


def test_the_converted_folder_has_ordinary_permissions(tmp_path, authors_split):
    umask = os.umask(0o022)
    try:
        diffrec_to_atomic(str(authors_split), str(tmp_path / "datasets"), "mine")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "datasets" / "mine").stat().st_mode) == 0o755


# --- interrupts, however the process was started ------------------------------------------------


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_exits_1_in_one_line_even_when_started_ignoring_sigint(tmp_path, signum, entry_path, wait_until):
    run = subprocess.Popen(
        [sys.executable, str(entry_path), "--model=DiffRec", "--epochs=500", "--show_progress=False", f"--checkpoint_dir={tmp_path}/saved"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint,
    )
    wait_until(lambda: list(tmp_path.glob("saved/*.pth")), "the run saves its first checkpoint")
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.strip().splitlines()[-1] == "error: interrupted (Ctrl-C or SIGTERM)"
