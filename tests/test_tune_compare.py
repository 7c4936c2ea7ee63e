"""Ray Tune searches and side-by-side comparisons."""

import csv
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import yaml

from recbole_diffusion.config import Config
from recbole_diffusion.quick_start.compare import compare
from recbole_diffusion.quick_start.report import model_colors, paired_test, per_user_values
from recbole_diffusion.model.diffusion import SCALED_SCHEDULES
from recbole_diffusion.quick_start import load_data_and_model
from recbole_diffusion.quick_start.tune import (
    RECORD_FILE, SearchError, check_space_keys, load_search_space, run_search, search_algorithm, to_ray_space, trial_resources,
)
from recbole_diffusion.utils import ConfigError, load_checkpoint

SPACES = Path(__file__).resolve().parents[1] / "properties" / "tune"

TINY = {"epochs": 2, "dims_dnn": [16], "embedding_size": 4, "train_batch_size": 512}


def write_space(path, space, **sections):
    path.write_text(yaml.safe_dump({"num_samples": 1, "config": TINY, "space": space, **sections}))

    return str(path)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module's searches (a search joins the one running), shut down
    at the end: starting Ray costs seconds a search."""
    yield
    ray.shutdown()


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if a search starts (or joins) Ray."""

    def forbidden(*args, **kwargs):
        raise AssertionError("Ray was started before the search was refused")

    monkeypatch.setattr(ray, "init", forbidden)


@pytest.mark.parametrize(
    "space, message",
    [
        ({}, "'space' is empty"),
        ({"steps": {"choice": []}}, "choice [] is empty"),
        ({"noise_scale": {"uniform": [0.1, 0.1]}}, "range [0.1, 0.1] is empty"),
        ({"learning_rate": {"loguniform": [0.0, 0.1]}}, "loguniform needs low > 0"),
        ({"steps": {"normal": [1, 2]}}, "give one of"),
        ({"steps": {"choice": [5]}, "defaults_first": "yes"}, "defaults_first = 'yes' must be true or false"),
    ],
)
def test_bad_search_space_is_refused(tmp_path, space, message):
    sections = {key: space.pop(key) for key in list(space) if key == "defaults_first"}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_search_space(write_space(tmp_path / "space.yaml", space, **sections))


@pytest.mark.parametrize(
    "text, message",
    [
        ("space: {learning_rate: {loguniform: [1e-4, 0.01]}\n", r"space.yaml': not plain YAML data \(while parsing"),
        ("- learning_rate\n", r"space.yaml': give its sections \(num_samples, .*\) as a mapping, not list"),
        ("space: {learning_rate: !!python/object/apply:os.getcwd []}\n", "space.yaml': not plain YAML data"),
    ],
)
def test_a_search_space_file_that_is_not_a_space_is_named(tmp_path, text, message):
    (tmp_path / "space.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"search space '{tmp_path}/{message}"):
        load_search_space(str(tmp_path / "space.yaml"))


def test_a_search_space_reads_numbers_as_recbole_config_files_do(tmp_path):
    (tmp_path / "space.yaml").write_text("space: {learning_rate: {loguniform: [1e-4, 1e-2]}}\n")  # PyYAML alone: two strings
    assert load_search_space(str(tmp_path / "space.yaml"))["space"] == {"learning_rate": {"loguniform": [0.0001, 0.01]}}


def test_unknown_parameter_fails_before_any_trial(tmp_path, no_ray):
    space = write_space(tmp_path / "space.yaml", {"noise_sclae": {"choice": [0.1]}})
    with pytest.raises(ConfigError, match="'noise_sclae' is not a config key of DiffRec"):
        run_search("DiffRec", "ml-100k", space, storage_path=str(tmp_path / "ray"))


def test_search_picks_best_by_validation_and_survives_a_crash(tmp_path, ray_session):
    # steps = 0 is refused by DiffRec's config check: that trial crashes, the others go on
    space = write_space(
        tmp_path / "space.yaml",
        {"steps": {"grid": [3, 0, 5]}, "learning_rate": {"choice": [0.001]}},
        resources_per_trial={"cpu": 1}, search={"algorithm": "random"},
        keep_checkpoints=1,
    )
    storage = tmp_path / "ray"
    best, trials = run_search("DiffRec", "ml-100k", space, storage_path=str(storage), name="search")
    assert len(trials) == 3
    assert trials.set_index("steps").loc[0, "status"] == "error"
    assert "steps' = 0" in trials.set_index("steps").loc[0, "error"]
    ran = trials[trials.status != "error"]
    assert set(ran.status) <= {"finished", "stopped early"} and (ran.validations >= 1).all()
    assert (ran.status == "stopped early").sum() == (ran.filter(like="test/").isna().all(axis=1)).sum()  # no test when stopped
    assert best["config"]["steps"] != 0 and best["status"] == "finished"
    assert math.isclose(best["best_valid_score"], ran.valid_score.max())
    assert set(best["valid"]) >= {"recall@20", "ndcg@20"} and set(best["test"]) >= {"recall@20", "ndcg@20"}
    assert all(0.0 <= value <= 1.0 for value in best["test"].values())
    assert (storage / "search" / "trials.csv").is_file()
    # only the best trial keeps its checkpoint, and it reloads
    assert Path(best["checkpoint"]).is_file() and list(trials.checkpoint[trials.checkpoint != ""]) == [best["checkpoint"]]
    assert sorted(path.name for path in storage.rglob("*.pth")) == [Path(best["checkpoint"]).name], (trials[["status", "checkpoint", "trial_dir"]].to_string(), list(storage.rglob("*.pth")))
    _, model, *_ = load_data_and_model(best["checkpoint"])
    assert model.diffusion.steps == best["config"]["steps"]

    # resuming a finished search restores it instead of starting over
    resumed, resumed_trials = run_search("DiffRec", "ml-100k", space, storage_path=str(storage), name="search", resume=True)
    assert resumed["config"] == best["config"] and len(resumed_trials) == 3


def test_the_first_trial_runs_the_models_defaults(tmp_path, ray_session):
    # the default dims_dnn ([16], from the fixed config) lies outside the searched choices, and is a
    # list, which Ray would otherwise read as more parameters
    space = write_space(
        tmp_path / "space.yaml",
        {"dims_dnn": {"choice": [[8], [12]]}, "learning_rate": {"loguniform": [0.01, 0.1]}, "steps": {"choice": [2, 3]}},
        num_samples=2, keep_checkpoints=2, seed=3, config={**TINY, "epochs": 1},
    )
    # a key set by the caller (--steps=4) is held there, not searched
    best, trials = run_search("DiffRec", "ml-100k", space, config_dict={"steps": 4}, storage_path=str(tmp_path / "ray"), name="defaults")
    assert "steps" not in trials and best["config"].get("steps", 4) == 4
    assert len(trials) == 2 and (trials.status != "error").all()
    defaults, sampled = trials[trials.defaults].iloc[0], trials[~trials.defaults].iloc[0]
    assert trials.defaults.sum() == 1 and trials.defaults.iloc[0]  # the first trial
    assert defaults.dims_dnn == [16] and defaults.learning_rate == Config("DiffRec", "ml-100k").final_config_dict["learning_rate"]
    assert sampled.dims_dnn in ([8], [12]) and 0.01 <= sampled.learning_rate <= 0.1
    _, model, *_ = load_data_and_model(defaults.checkpoint)
    assert [layer.out_features for layer in model.denoiser.in_layers][:1] == [16]  # the model ran the defaults
    assert model.diffusion.steps == 4
    assert isinstance(best["config"]["dims_dnn"], list)


def test_tpe_runs_no_config_twice_until_the_space_is_spent():
    import optuna
    from ray import tune

    from recbole_diffusion.quick_start.searcher import DistinctOptunaSearch

    space = {"k": tune.choice([10, 100]), "shrink": tune.choice([0.0, 10.0])}
    for seed in range(5):  # the defaults first, then two trials at a time, as Ray runs them on 2 CPUs
        searcher = DistinctOptunaSearch(
            metric="m", mode="max", points_to_evaluate=[{"k": 100, "shrink": 0.0}], sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        )
        searcher.set_search_properties("m", "max", space)
        configs = [searcher.suggest("t0"), searcher.suggest("t1")]
        for i in range(2, 5):
            searcher.on_trial_complete(f"t{i - 2}", {"m": 0.1 * i})
            configs.append(searcher.suggest(f"t{i}"))
        keys = [(config["k"], config["shrink"]) for config in configs]
        assert keys[0] == (100, 0.0) and len(set(keys[:4])) == 4  # every combination once, the defaults first
        assert keys[4] in keys[:4]  # then, with nothing new left, a repeat rather than no trial
        searcher.on_trial_complete("t4", {"m": 0.5})


def test_a_search_of_only_keys_you_set_is_refused(tmp_path, no_ray):
    space = write_space(tmp_path / "space.yaml", {"steps": {"choice": [2, 3]}})
    with pytest.raises(ConfigError, match=r"you set every key it searches \(steps\); nothing is left to search"):
        run_search("DiffRec", "ml-100k", space, config_dict={"steps": 4}, storage_path=str(tmp_path / "ray"))


def test_trials_find_a_file_given_by_a_relative_path(tmp_path, ray_session, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Ray runs each trial in its own directory
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(1683, 4)))
    space = write_space(tmp_path / "space.yaml", {"lr1": {"choice": [0.001]}}, config={**TINY, "epochs": 1})
    config = {"item_emb_path": "emb.npy", "n_cate": 1, "in_dims": [8], "steps": 5}
    best, _ = run_search("LDiffRec", "ml-100k", space, config_dict=config, storage_path=str(tmp_path / "ray"), name="relative")
    assert best["status"] == "finished"


def test_a_search_whose_every_trial_failed_raises(tmp_path, ray_session):
    space = write_space(tmp_path / "space.yaml", {"steps": {"grid": [0, -1]}}, search={"algorithm": "random"})
    with pytest.raises(SearchError, match="all 2 trials failed.*steps' = 0"):
        run_search("DiffRec", "ml-100k", space, storage_path=str(tmp_path / "ray"), name="failing")


@pytest.mark.parametrize("algorithm", ["tpe", "random"])
def test_a_seeded_space_samples_the_same_configs(tmp_path, algorithm):
    """The searcher a run builds from the space (TPE, Ray's random sampling) draws by its seed."""
    from ray import tune

    tune.register_trainable("nothing", lambda config: None)

    def drawn(seed):
        path = write_space(tmp_path / "space.yaml", {"learning_rate": {"loguniform": [0.0001, 0.01]}}, seed=seed, search={"algorithm": algorithm})
        spec = load_search_space(path)
        searcher, space = search_algorithm(spec, {}, "max", spec["seed"]), to_ray_space(spec["space"])
        if algorithm == "random":
            searcher.add_configurations({"search": {"run": "nothing", "config": space, "num_samples": 3}})
            return [searcher.next_trial().config["learning_rate"] for _ in range(3)]
        searcher.set_search_properties("valid_score", "max", space)
        return [searcher.suggest(f"trial{i}")["learning_rate"] for i in range(3)]

    assert drawn(7) == drawn(7) and len(set(drawn(7))) == 3 and drawn(8) != drawn(7)


def test_a_local_search_ignores_a_dead_clusters_address_and_keeps_the_callers_sigterm_handler(tmp_path, ray_session, monkeypatch):
    ray.shutdown()  # the search must start Ray itself
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # what a killed head leaves behind
    space = write_space(tmp_path / "space.yaml", {"steps": {"choice": [3]}}, config={**TINY, "epochs": 1})
    ours = signal.signal(signal.SIGTERM, signal.default_int_handler)  # as the command line's, which reports an interrupt
    try:
        best, _ = run_search("DiffRec", "ml-100k", space, storage_path=str(tmp_path / "ray"), name="local")
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler  # not Ray's, which exits without a word
    finally:
        signal.signal(signal.SIGTERM, ours)
    assert best["status"] == "finished"
    assert best["seed"] == 2020  # a space without a seed samples by the run's (RecBole's default)


def test_compare_applies_the_first_models_own_config(tmp_path):
    """The first model's own overrides apply to it (here SASRec with BPR loss, so with negative sampling)."""
    small = {"epochs": 1, "hidden_size": 8, "inner_size": 8, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 5, "checkpoint_dir": str(tmp_path / "saved")}
    per_model = {"SASRec": {"loss_type": "BPR"}}  # not CE: needs RecBole's negative sampling back
    (row,) = compare(["SASRec"], "ml-100k", config_dict=small, model_config=per_model)
    assert row["model"] == "SASRec" and 0.0 <= row["test_result"]["hit@10"] <= 1.0


@pytest.mark.parametrize("space_file", sorted(SPACES.glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_search_spaces_fit_their_model(space_file):
    spec = load_search_space(str(space_file))
    check_space_keys(spec, str(space_file), space_file.stem, "ml-100k", [], dict(spec.get("config") or {}))
    # a searched noise key is only meaningful when every searched schedule reads it
    space = spec["space"]
    if {"noise_scale", "noise_min", "noise_max"} & set(space) and "noise_schedule" in space:
        schedules = next(iter(space["noise_schedule"].values()))
        assert set(schedules) <= set(SCALED_SCHEDULES), f"{space_file.name} pairs noise_* with {schedules}"


def test_trials_take_a_gpu_share_only_where_there_are_gpus():
    assert trial_resources({}, cluster_gpus=0) == {"cpu": 1, "gpu": 0}
    assert trial_resources({"gpu": "auto"}, cluster_gpus=2) == {"cpu": 1, "gpu": 0.25}
    assert trial_resources({"cpu": 2, "gpu": 0.5}, cluster_gpus=0) == {"cpu": 2, "gpu": 0.5}
    with pytest.raises(ConfigError, match="gpu = 'some'"):
        trial_resources({"gpu": "some"}, cluster_gpus=1)


def test_paired_test_has_the_known_answer():
    reference = {str(u): 0.0 for u in range(8)}
    better = {str(u): float(u + 1) for u in range(8)}  # all 8 differences positive, distinct ranks
    p_value, difference, users = paired_test(reference, better)
    assert users == 8 and difference == 4.5
    assert math.isclose(p_value, 2 / 2**8)  # exact two-sided: only the all-positive sign pattern and its mirror
    assert paired_test(reference, dict(reference)) == (1.0, 0.0, 8)
    assert paired_test(reference, {"x": 1.0})[2] == 0


def test_holm_adjusts_step_down_and_keeps_untested_rows():
    from recbole_diffusion.quick_start.report import holm

    # sorted 0.01, 0.03, 0.04: x3 = 0.03, x2 = 0.06, x1 = 0.04 -> 0.06 (never below the one before)
    assert holm([0.04, math.nan, 0.01, 0.03]) == pytest.approx([0.06, math.nan, 0.03, 0.06], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_the_bootstrap_interval_covers_the_relative_difference_and_shrinks_with_users():
    from recbole_diffusion.quick_start.report import bootstrap_relative_difference

    rng = np.random.default_rng(0)
    reference = {str(u): v for u, v in enumerate(rng.random(2000))}
    other = {u: v * 1.1 + rng.normal(0, 0.05) for u, v in reference.items()}  # about +10 %
    relative, low, high = bootstrap_relative_difference(reference, other)
    assert low < relative < high and low < 0.1 < high and high - low < 0.03
    few = dict(list(reference.items())[:50])
    _, few_low, few_high = bootstrap_relative_difference(few, {u: other[u] for u in few})
    assert few_high - few_low > high - low
    assert bootstrap_relative_difference(reference, reference) == (0.0, 0.0, 0.0)


def test_per_user_values_average_to_recboles_metrics():
    """The per-user values are the numbers RecBole averages into its result."""
    import torch
    from recbole.evaluator import Evaluator
    from recbole.evaluator.collector import DataStruct

    config = Config(model="BPR", dataset="ml-100k", config_dict={"metrics": ["Recall", "NDCG", "Hit", "MRR", "Precision"], "topk": [1, 3], "valid_metric": "MRR@3"})
    hits = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 1]])
    struct = DataStruct()
    struct.set("rec.topk", torch.cat([hits, torch.tensor([[2], [1], [4], [3]])], dim=1))
    evaluator = Evaluator(config)
    values = per_user_values(evaluator, struct, [11, 12, 13, 14])
    result = evaluator.evaluate(struct)
    for name, per_user in values.items():
        assert list(per_user) == ["11", "12", "13", "14"]
        assert math.isclose(sum(per_user.values()) / 4, result[name], abs_tol=1e-4)
    assert values["recall@3"] == {"11": 1.0, "12": 0.0, "13": 0.5, "14": 1.0}


def test_per_user_auc_and_logloss_are_each_users_own():
    """Labelled rows (CTR): AUC and LogLoss over each user's rows, by RecBole's metric code; with equal
    rows per user, the users' LogLoss averages to RecBole's."""
    import torch
    from recbole.evaluator import Evaluator
    from recbole.evaluator.collector import DataStruct

    config = Config(model="HPMN", dataset="ml-100k")
    scores = torch.tensor([0.9, 0.2, 0.4, 0.3, 0.6, 0.7, 0.1, 0.8, 0.5])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    users = [7, 7, 7, 8, 8, 8, 9, 9, 9]  # user 9 has positives only: no AUC
    struct = DataStruct()
    struct.set("rec.score", scores)
    struct.set("data.label", labels)
    evaluator = Evaluator(config)
    values = per_user_values(evaluator, struct, users)
    assert values["auc"] == {"7": 1.0, "8": 0.5}  # user 8: its positive (0.6) above one negative of two
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3
    assert math.isclose(values["logloss"]["7"], expected, rel_tol=1e-6)  # float32 scores
    assert math.isclose(sum(values["logloss"].values()) / 3, evaluator.evaluate(struct)["logloss"], abs_tol=1e-4)


def test_a_smaller_is_better_metric_is_better_when_it_falls():
    from recbole_diffusion.quick_start.report import summarise

    users = [str(u) for u in range(30)]
    reference = {"model": "A", "seed": 1, "test_result": {"logloss": 0.5}, "per_user": {"logloss": dict.fromkeys(users, 0.5)}}
    lower = {"model": "B", "seed": 1, "test_result": {"logloss": 0.4}, "per_user": {"logloss": {u: 0.4 - i * 1e-3 for i, u in enumerate(users)}}}
    rows = summarise([reference, lower], "A", ["logloss"])
    assert rows[1]["direction"] == "better" and rows[1]["p_holm"] < 0.05


def test_compare_over_seeds_reports_mean_std_and_p_values(tmp_path, caplog):
    out = tmp_path / "out"
    runs = compare(
        ["DiffRec", "BPR"], "ml-100k", config_dict={"epochs": 2, "steps": 5, "dims_dnn": [16]}, output_dir=str(out), seeds=[2020, 2021],
        jobs=2,
    )
    # two at once, each on half the threads; the runs come back in the models' and seeds' order
    assert [(run["model"], run["seed"]) for run in runs] == [("DiffRec", 2020), ("DiffRec", 2021), ("BPR", 2020), ("BPR", 2021)]
    assert {run["threads"] for run in runs} == {max(1, os.cpu_count() // 2)}
    for run in runs:  # a plugin model beside a built-in one, each evaluated with the first model's metrics
        assert set(run["test_result"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr") for k in (10, 20)}
        # DiffRec validates every 5 epochs and after its last, BPR every epoch
        assert run["first_valid_epoch"] == {"DiffRec": 2, "BPR": 1}[run["model"]]
        assert run["epochs"] == 2 and run["s_per_epoch"] > 0 and run["s_per_eval"] > 0 and run["peak_mem_mb"] > 0
    # one split for every seed: the same test users, and seeds change the result
    assert set(runs[0]["per_user"]["recall@20"]) == set(runs[3]["per_user"]["recall@20"])
    assert runs[0]["test_result"] != runs[1]["test_result"]
    summary = list(csv.DictReader((out / "summary.csv").open()))
    bpr = {row["metric"]: row for row in summary if row["model"] == "BPR"}
    assert set(bpr) == {f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr") for k in (10, 20)}
    values = [run["test_result"]["recall@20"] for run in runs if run["model"] == "BPR"]
    assert math.isclose(float(bpr["recall@20"]["mean"]), sum(values) / 2)
    assert math.isclose(float(bpr["recall@20"]["std"]), abs(values[0] - values[1]) / 2**0.5)
    assert 0 <= float(bpr["recall@20"]["p_value"]) <= float(bpr["recall@20"]["p_holm"]) <= 1
    assert bpr["recall@20"]["direction"] in ("better", "worse", "no significant difference")
    low, relative, high = (float(bpr["recall@20"][key]) for key in ("relative_low", "relative", "relative_high"))
    assert low <= relative <= high
    table = (out / "comparison.md").read_text()
    assert "| DiffRec |" in table and "| BPR |" in table and "s / epoch" in table and (out / "comparison.html").stat().st_size > 0
    assert "± " in table and "p-values against DiffRec" in table
    assert "- every model (--key=value): epochs=2, steps=5, dims_dnn=[16]\n" in table
    run_rows = list(csv.DictReader((out / "runs.csv").open()))
    assert sorted((row["model"], row["first_valid_epoch"]) for row in run_rows) == [("BPR", "1")] * 2 + [("DiffRec", "2")] * 2
    # it says before training how every model is evaluated, and how many runs it has to train
    assert "every model is evaluated with DiffRec's metrics=['Recall', 'NDCG', 'Hit', 'MRR'], topk=[10, 20], valid_metric=Recall@20" in caplog.text
    assert f"comparison: 0 of 4 runs reused from {out / 'runs.jsonl'}, 4 to train" in caplog.text
    # a rerun with the same settings reuses the log instead of training again
    again = compare(["DiffRec", "BPR"], "ml-100k", config_dict={"epochs": 2, "steps": 5, "dims_dnn": [16]}, output_dir=str(out), seeds=[2020, 2021])
    assert [run["wall_s"] for run in again] == [run["wall_s"] for run in runs]
    assert "4 of 4 runs reused" in caplog.text
    # a change to one model's own settings reruns that model only (one seed: one run to train)
    changed = compare(
        ["DiffRec", "BPR"], "ml-100k", config_dict={"epochs": 2, "steps": 5, "dims_dnn": [16]},
        model_config={"BPR": {"embedding_size": 8}}, output_dir=str(out), seeds=[2020],
    )
    assert changed[0]["wall_s"] == runs[0]["wall_s"]
    assert changed[1]["wall_s"] != runs[2]["wall_s"] and changed[1]["params"] < runs[2]["params"]  # BPR, 8-wide
    title = (out / "comparison.md").read_text().splitlines()[0]
    # each model's own validation schedule (DiffRec's yaml, RecBole's for BPR), named model by model as they differ
    assert (
        "seeds 2020, defaults but for the settings below, trained DiffRec: at most 2 epochs, validated every 5 epochs, stopped after "
        "4 validations without gain; BPR: at most 2 epochs, validated every epoch, stopped after 11 validations without gain, valid"
    ) in title


def test_a_crashed_seed_is_reported_not_dropped(tmp_path, monkeypatch):
    import recbole_diffusion.quick_start.compare as compare_module

    real = compare_module._result

    def seed_2021_crashes(receive, child, model, seed):
        run = real(receive, child, model, seed)
        return {"model": model, "seed": seed, "error": "RuntimeError: boom"} if seed == 2021 else run

    monkeypatch.setattr(compare_module, "_result", seed_2021_crashes)
    runs = compare(["BPR"], "ml-100k", config_dict={"epochs": 1}, output_dir=str(tmp_path), seeds=[2020, 2021], jobs=2)
    assert runs[1] == {"model": "BPR", "seed": 2021, "error": "RuntimeError: boom", "settings": runs[1]["settings"]}
    text = (tmp_path / "comparison.md").read_text()
    assert "BPR, seed 2021: RuntimeError: boom" in text and "| 1 |" in text  # one finished seed in the mean
    assert [row["status"] for row in csv.DictReader((tmp_path / "runs.csv").open())] == ["finished", "crashed"]
    assert not list((tmp_path / "states").iterdir())  # a run's training state goes when it ends, crashed or not
    # a rerun keeps the finished seed and runs the crashed one again
    monkeypatch.setattr(compare_module, "_result", real)
    again = compare(["BPR"], "ml-100k", config_dict={"epochs": 1}, output_dir=str(tmp_path), seeds=[2020, 2021])
    assert again[0]["wall_s"] == runs[0]["wall_s"] and "error" not in again[1]


def test_a_run_whose_process_dies_is_reported_with_its_exit_code():
    from recbole_diffusion.quick_start.compare import _run_in_fresh_processes

    def kill_the_child():
        while not multiprocessing.active_children():
            time.sleep(0.1)
        os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_child)
    killer.start()
    results = {}
    _run_in_fresh_processes(
        multiprocessing.get_context("spawn"), "ml-100k", None, [("a", "BPR", {"seed": 7, "epochs": 100}, None)], 1, results.__setitem__
    )
    killer.join()
    assert results == {"a": {"model": "BPR", "seed": 7, "error": "the run's process ended without a result (exit code -9)"}}


def test_a_terminated_comparison_ends_its_runs_and_says_how_to_resume(tmp_path, entry_path, wait_until):
    parent = subprocess.Popen(
        [sys.executable, str(entry_path), "--compare=BPR", "--seeds=2020,2021", "--jobs=2", "--epochs=300", f"--output={tmp_path / 'out'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    wait_until(lambda: len(list((tmp_path / "log").rglob("*.log"))) >= 2, "both runs start to log")
    runs = [int(pid) for pid in children.read_text().split()]
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 1
    assert err.strip().splitlines()[-1] == (
        f"error: the comparison was interrupted during BPR, seed 2020 and BPR, seed 2021; the finished runs are kept in "
        f"{tmp_path / 'out' / 'runs.jsonl'}: the same command resumes, the runs in progress from their last validation"
    )
    # the runs are ended at once; multiprocessing's resource tracker follows
    wait_until(lambda: not any(map(_running, runs)), "every run has ended", limit_s=30)
    assert len(runs) >= 2 and not any(map(_running, runs))  # no orphan trains on


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_a_comparison_killed_or_interrupted_leaves_no_run_training(tmp_path, signum, entry_path, wait_until):
    """Also when it was started with SIGINT ignored (bash's `cmd &` in a script), and when it is
    killed with SIGKILL, which it cannot handle: its run ends itself."""
    parent = subprocess.Popen(
        [sys.executable, str(entry_path), "--compare=BPR", "--seeds=2020", "--epochs=300", f"--output={tmp_path / 'out'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    wait_until(lambda: list((tmp_path / "log").rglob("*.log")), "the run starts to log")
    run = [int(pid) for pid in children.read_text().split()]
    parent.send_signal(signum)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == (1 if signum == signal.SIGINT else -signal.SIGKILL)
    if signum == signal.SIGINT:
        assert err.strip().splitlines()[-1].startswith("error: the comparison was interrupted during BPR, seed 2020")
    wait_until(lambda: not any(map(_running, run)), "the run has ended", limit_s=30)
    assert run and not any(map(_running, run))


def _running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_compare_refuses_models_that_would_be_tested_on_different_data(tmp_path):
    other_split = {"eval_args": {"split": {"RS": [0.7, 0.1, 0.2]}, "order": "RO", "group_by": "user", "mode": "full"}}
    with pytest.raises(ConfigError, match=r"tested on different data, 'eval_args' differs \(BPR: .*'RS': \[0.8, 0.1, 0.1\].*EASE: .*0.7"):
        compare(["BPR", "EASE"], "ml-100k", config_dict={"epochs": 1}, model_config={"EASE": other_split}, output_dir=str(tmp_path))
    assert not (tmp_path / "runs.jsonl").exists()


def test_compare_refuses_to_mix_model_types():
    with pytest.raises(ConfigError, match=r"mixes model types: DiffRec \(general\), SASRec \(sequential\)"):
        compare(["DiffRec", "SASRec"], "ml-100k", config_dict={"epochs": 1})


def test_a_tuned_comparison_gives_every_model_the_same_budget(tmp_path, ray_session):
    out = tmp_path / "out"
    evaluation = {"metrics": ["Recall", "NDCG"], "topk": [5], "valid_metric": "NDCG@5"}  # the first model's, for all
    # stopping_step as the user's (the protocol gives eval_step): the title reads both
    runs = compare(
        ["BPR", "EASE"], "ml-100k", config_dict={"epochs": 1, "stopping_step": 3}, model_config={"BPR": evaluation}, output_dir=str(out),
        tune_trials=2, seeds=[2020], jobs=2,
    )
    assert [run["model"] for run in runs] == ["BPR", "EASE"] and all("error" not in run for run in runs)
    tuned = json.loads((out / "tuned_configs.json").read_text())
    assert set(tuned["BPR"]) == {"embedding_size", "learning_rate", "weight_decay"} and set(tuned["EASE"]) == {"reg_weight"}
    report = (out / "comparison.md").read_text()
    for model in ("BPR", "EASE"):
        trials = pd.read_csv(out / "tuning" / model / "trials.csv")
        assert len(trials) == 2  # the same number of trials for each model
        assert {"test/ndcg@5", "test/recall@5"} <= set(trials.columns) and "test/mrr@10" not in trials.columns
        assert (trials.best_epoch >= 1).all() and (trials.best_epoch <= trials.epochs).all()  # also for a pruned trial
        line = next(line for line in report.splitlines() if line.startswith(f"- {model}: "))
        assert all(f"{key}=" in line for key in tuned[model])
        assert line.endswith("(its defaults won the search)") == trials.defaults[trials.valid_score.idxmax()]
    title = (out / "comparison.md").read_text().splitlines()[0]
    assert "each tuned with 2 trials (its defaults first, TPE" in title and "at most 1 epochs, validated every 5 epochs, stopped after 4 validations without gain (EASE: fitted once)" in title
    assert all(pd.read_csv(out / "tuning" / model / "trials.csv").defaults.iloc[0] for model in ("BPR", "EASE"))


def test_a_tuned_comparison_trains_to_early_stopping_unless_told_otherwise():
    from recbole_diffusion.quick_start.compare import CONVERGENCE, convergence_protocol

    bpr = Config(model="BPR", dataset="ml-100k")
    assert convergence_protocol(bpr) == CONVERGENCE
    assert convergence_protocol(Config(model="BPR", dataset="ml-100k", config_dict={"epochs": 30})) == {"eval_step": 5, "stopping_step": 3}
    # the DiffRec protocol: RecBole's early stopping ends training 20 epochs after the best validation
    from recbole.utils import early_stopping

    best, steps = -1.0, 0
    for validation, score in enumerate([0.1, 0.2] + [0.15] * 10):
        best, steps, stop, _ = early_stopping(score, best, steps, max_step=CONVERGENCE["stopping_step"])
        if stop:
            break
    assert (validation - 1) * CONVERGENCE["eval_step"] == 20
    assert convergence_protocol(Config(model="EASE", dataset="ml-100k")) == {}  # fitted once: validates once


def test_the_report_flags_a_model_stopped_by_the_epoch_cap_or_best_at_its_first_validation():
    from recbole_diffusion.quick_start.report import convergence_rows

    runs = [
        {"model": "A", "seed": 1, "epochs": 40, "best_epoch": 20, "first_valid_epoch": 5, "wall_s": 10.0},
        {"model": "B", "seed": 1, "epochs": 100, "best_epoch": 100, "wall_s": 30.0},
        {"model": "B", "seed": 2, "epochs": 100, "best_epoch": 90, "wall_s": 30.0},
        {"model": "C", "seed": 1, "epochs": 25, "best_epoch": 5, "first_valid_epoch": 5, "wall_s": 9.0},  # peaked by epoch 5
        {"model": "D", "seed": 1, "epochs": 21, "best_epoch": 1, "first_valid_epoch": 1, "wall_s": 9.0},  # validated every epoch
    ]
    rows = convergence_rows(runs, {"A": 5.0})
    assert rows["A"] == {"best_epoch": 20, "epochs": 40, "at_cap": False, "at_first": False, "seeds_s": 10.0, "search_s": 5.0}
    assert rows["B"]["at_cap"] and rows["B"]["best_epoch"] == 95 and rows["B"]["search_s"] is None and not rows["B"]["at_first"]
    assert rows["C"]["at_first"] and not rows["C"]["at_cap"]
    assert not rows["D"]["at_first"]  # nothing earlier to validate


def test_the_best_validation_is_the_last_of_a_tie_as_recbole_keeps_it():
    from recbole.utils import early_stopping

    from recbole_diffusion.quick_start.report import best_validation

    scores = [0.10, 0.12, 0.11, 0.12, 0.09]  # RecBole's 4-decimal scores tie
    best, steps, saved = -1.0, 0, None
    for epoch, score in enumerate(scores, start=1):
        best, steps, _, update = early_stopping(score, best, steps, max_step=10)
        saved = epoch if update else saved
    assert best_validation(enumerate(scores, start=1)) == (saved, 0.12) == (4, 0.12)
    assert best_validation(enumerate([0.5, 0.3, 0.3, 0.4], start=1), bigger=False) == (3, 0.3)
    assert best_validation([]) == (None, best_validation([])[1]) and math.isnan(best_validation([])[1])


def test_the_report_prints_only_what_was_measured():
    """One seed has no standard deviation; metrics without per-user values (AUC) have no paired test."""
    from recbole_diffusion.quick_start.report import markdown, summarise

    per_user = {"recall@2": {"1": 1.0, "2": 0.0, "3": 0.5, "4": 1.0, "5": 0.0, "6": 1.0}}
    costs = {"s_per_epoch": 1.0, "s_per_eval": 1.0, "params": 10, "peak_mem_mb": 100.0, "epochs": 5, "best_epoch": 3, "wall_s": 9.0}
    runs = [
        {"model": "A", "seed": 1, "test_result": {"auc": 0.8, "recall@2": 0.5833}, "per_user": per_user, **costs},
        {"model": "B", "seed": 1, "test_result": {"auc": 0.7, "recall@2": 0.25}, **costs, "first_valid_epoch": 3,
         "per_user": {"recall@2": dict.fromkeys(per_user["recall@2"], 0.25)}},
    ]
    text = markdown("t", summarise(runs, "A", ["auc"]), runs, "A", ["auc"])
    assert "| A | 0.8000 | 1 |" in text and "±" not in text.split("\n", 3)[3] and "nan" not in text
    assert "no paired test (no per-user values of these metrics)" in text and "p-values" not in text and "bootstrap" not in text
    text = markdown("t", summarise(runs, "A", ["recall@2"]), runs, "A", ["recall@2"])
    assert "Holm-adjusted over the table's 1 tests" in text and "p-values against A" in text and "bootstrap interval" in text
    assert "| A | 3.00 | 5.00 |" in text and "| B | 3.00 ◁ | 5.00 |" in text  # B's best was its first validation


@pytest.mark.parametrize(
    "search, space, message",
    [
        ({"algorithm": "bayes"}, {"steps": {"choice": [5]}}, "give {algorithm: one of \\['tpe', 'random'\\]"),
        ({"startup_trials": -1}, {"steps": {"choice": [5]}}, "startup_trials = -1 must be an integer >= 0"),
        ({}, {"steps": {"grid": [5, 10]}}, "by grid need search: {algorithm: random}"),
    ],
)
def test_a_bad_search_section_is_refused(tmp_path, search, space, message):
    path = write_space(tmp_path / "space.yaml", space, search=search)
    with pytest.raises(ConfigError, match=message):
        load_search_space(path)


def test_a_tuned_comparison_refuses_a_model_without_a_space(tmp_path):
    with pytest.raises(ConfigError, match=r"no search space for Pop \(expected properties/tune/Pop.yaml\)"):
        compare(["BPR", "Pop"], "ml-100k", config_dict={"epochs": 1}, output_dir=str(tmp_path), tune_trials=2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_search_exits_non_zero_with_the_resume_command(tmp_path, signum, entry_path, wait_until):
    """However it was started: here with SIGINT ignored, as bash's `cmd &` in a script starts it."""
    space = write_space(tmp_path / "space.yaml", {"learning_rate": {"loguniform": [0.0001, 0.01]}}, config={**TINY, "epochs": 200}, num_samples=4)
    search = subprocess.Popen(
        [sys.executable, str(entry_path), "--model=DiffRec", f"--tune={space}", f"--tune_dir={tmp_path / 'ray'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    wait_until(lambda: list((tmp_path / "ray").glob("*/*/result.json")), "a trial runs")
    search.send_signal(signum)
    _, err = search.communicate(timeout=120)
    assert search.returncode == 1
    assert "was interrupted; continue it with the same command and --resume" in err.strip().splitlines()[-1]


def test_a_resumed_search_goes_on_with_its_interrupted_trial_from_the_last_validation(tmp_path, entry_path, wait_until):
    space = write_space(tmp_path / "space.yaml", {"learning_rate": {"choice": [0.001]}}, config={**TINY, "epochs": 30})
    command = [sys.executable, str(entry_path), "--model=DiffRec", f"--tune={space}", f"--tune_dir={tmp_path / 'ray'}"]
    search = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: list((tmp_path / "ray").glob("*/checkpoints/*/training-state.pth")), "the trial validates once")
    search.send_signal(signal.SIGTERM)
    _, err = search.communicate(timeout=120)
    assert search.returncode == 1, err[-3000:]
    experiment = tmp_path / "ray" / "DiffRec-ml-100k"
    validated = load_checkpoint(next(experiment.glob("checkpoints/*/training-state.pth")))["epoch"] + 1
    interrupted_s = json.loads((experiment / RECORD_FILE).read_text())["wall_s"]
    resumed = subprocess.run([*command, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((experiment / RECORD_FILE).read_text())
    assert 0 < interrupted_s < record["best"]["wall_s"] == record["wall_s"]  # the search's time counts both parts
    epochs = pd.read_csv(next(experiment.glob("_trial_*/progress.csv"))).epoch
    assert epochs.min() > validated  # the restarted trial went on after its last validation
    trials = pd.read_csv(experiment / "trials.csv")
    assert list(trials.status) == ["finished"] and trials.epochs[0] == epochs.max()
    # every validation of the trial, the ones before the interruption too (Ray's history starts again)
    assert trials.validations[0] == trials.epochs[0] // 5 > epochs.nunique()  # DiffRec validates every 5 epochs
    assert 0 < trials.best_epoch[0] <= trials.epochs[0] and record["best"]["best_epoch"] == trials.best_epoch[0]
    assert not list(experiment.glob("checkpoints/*/training-state.pth"))  # gone once the trial ended


def test_a_search_runs_on_a_ray_cluster_started_with_ray_start(tmp_path, entry_path, free_port):
    """A head started by the installed Ray's `ray start` on loopback, joined by `--tune ...
    --ray_address` as the README says (Ray >= 2.5x's token authentication: RAY_AUTH_MODE=token)."""
    port = free_port
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (conftest)
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        space = write_space(tmp_path / "space.yaml", {"learning_rate": {"choice": [0.001, 0.01]}}, config={**TINY, "epochs": 1}, num_samples=2)
        for line in head.stdout:  # until the head is up (or `ray start` has ended)
            if "Ray runtime started" in line:
                break
        search = subprocess.run(
            [sys.executable, str(entry_path), "--model=DiffRec", f"--tune={space}", f"--ray_address=127.0.0.1:{port}", f"--tune_dir={tmp_path / 'ray'}"],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
        )
        assert search.returncode == 0, search.stderr[-3000:]
        trials = pd.read_csv(tmp_path / "ray" / "DiffRec-ml-100k" / "trials.csv")
        assert len(trials) == 2 and "error" not in set(trials.status) and "finished" in set(trials.status)  # ASHA may stop one
        assert "best valid (" in search.stdout and "its test: {" in search.stdout
    finally:
        head.terminate()
        head.wait(timeout=60)


def test_a_subclass_searches_its_base_models_space():
    from recbole_diffusion.quick_start.compare import search_space_file

    assert search_space_file("LTDiffRec").name == "LDiffRec.yaml" and search_space_file("TDiffRec").name == "TDiffRec.yaml"


def test_a_search_on_a_dataset_of_ones_own(tmp_path, ray_session):
    """Trials find a dataset outside RecBole's package (data_path is RecBole's folder above it)."""
    import recbole

    source = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    (tmp_path / "data" / "mine").mkdir(parents=True)
    lines = source.read_text().splitlines()
    (tmp_path / "data" / "mine" / "mine.inter").write_text("\n".join(lines[:20001]) + "\n")
    (tmp_path / "mine.yaml").write_text(f"data_path: {tmp_path / 'data'}\ndataset: mine\n")
    space = write_space(tmp_path / "space.yaml", {"learning_rate": {"choice": [0.001]}}, config={**TINY, "epochs": 1})
    best, _ = run_search("DiffRec", None, space, [str(tmp_path / "mine.yaml")], storage_path=str(tmp_path / "ray"))
    assert best["status"] == "finished"


def test_report_colours_models_apart():
    """The ML-1M table has 13 models: each gets its own bar colour (the palette once had 10, so the
    11th shared the first's), and a colour repeats only after the whole palette is used."""
    models = [f"M{i}" for i in range(40)]
    colors = model_colors(models)
    assert len(set(colors[m] for m in models[:13])) == 13
    first_repeat = next(i for i, m in enumerate(models) if colors[m] in [colors[n] for n in models[:i]])
    assert first_repeat == 34 and colors["M34"] == colors["M0"]
