"""Hyper-parameter search with Ray Tune over ordinary plugin runs.

A search space is a yaml file (ready ones per model under ``properties/tune/``)::

    num_samples: 8                  # trials (grid values multiply it, as in Ray)
    seed: 2020                      # of the sampler (default: the run's seed, RecBole's 2020): the
                                    # same configs are drawn on every run
    defaults_first: true            # the first trial runs the model's own values of the searched
                                    # keys (the default; it counts as one of num_samples)
    keep_checkpoints: 1             # keep the best-valid checkpoints of the N best trials only
    resources_per_trial: {cpu: 1, gpu: auto}   # gpu: a number (may be a fraction), or auto:
                                    # 0.25 of a GPU per trial where the Ray cluster has GPUs, else 0
    scheduler: {grace_period: 2, reduction_factor: 2}   # ASHA, on the validation metric
    config: {epochs: 20}            # fixed overrides for every trial
    space:                          # config keys and their distributions
      noise_schedule: {choice: [linear, linear-var, cosine]}
      steps: {grid: [5, 20, 40]}
      learning_rate: {loguniform: [0.0001, 0.01]}
      dropout: {uniform: [0.0, 0.5]}
      embedding_size: {randint: [8, 65]}

A searched key that the overrides (``config_dict``, the command line's ``--key=value``) set is held
at that value and left out of the space. The first trial runs the model's own settings of the
searched keys (its yaml and the config files): however small the budget, the model's defaults are
among what it compares (unless ASHA stops that trial). Each trial is
:func:`~recbole_diffusion.quick_start.objective_function`, evaluating on the
validation set every epoch and reporting RecBole's ``valid_metric`` to Tune each time, so that
ASHA stops weak trials early. The test set is evaluated once, at the end of a trial that was not
stopped, and never used to select. A crashing (or diverging) trial is recorded as ``error`` and the
search goes on; a search in which every trial failed, or that was interrupted (Ctrl-C), raises
:class:`SearchError` (with the ``--resume`` command in the latter case); ``resume=True`` continues
an interrupted search from its directory, its started trials from the training state each keeps
after its latest validation (:data:`TRIAL_STATE`). Each trial writes its checkpoints to
``<experiment>/checkpoints/<trial id>``; the best trial's is returned, and only the
``keep_checkpoints`` best trials keep theirs.
"""

import ast
import json
import math
import os
import re
import shutil
import time
from logging import getLogger

from recbole_diffusion.config.configurator import read_yaml_file
from recbole_diffusion.config.trust import check_no_code
from recbole_diffusion.utils.checks import ConfigError, is_int
from recbole_diffusion.utils.utils import signals_interrupt

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")
SPACE_SECTIONS = (
    "num_samples", "seed", "defaults_first", "keep_checkpoints", "resources_per_trial", "search", "scheduler", "config", "space",
)
SEARCHES = ("tpe", "random")
STARTUP_TRIALS = 5  # random trials before TPE models the results (the reproducibility studies' 5 of 35)
# The metric every trial reports; its direction follows the model's valid_metric_bigger.
REPORTED_METRIC = "valid_score"
TRIAL_CHECKPOINTS = "checkpoints"  # <experiment>/checkpoints/<trial id>/
TRIAL_STATE = "training-state.pth"  # in a trial's checkpoint folder until the trial ends
FINISHED, STOPPED, ERROR = "finished", "stopped early", "error"
AUTO, AUTO_GPU_SHARE = "auto", 0.25  # four trials share a GPU: these models are small


class SearchError(RuntimeError):
    """A search that produced no usable result: every trial failed, or it was interrupted."""


def load_search_space(path):
    """Read and check a search-space file (structure and ranges; keys are checked against a model later)."""
    spec = read_yaml_file(path, f"search space '{path}'") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"search space '{path}': give its sections ({', '.join(SPACE_SECTIONS)}) as a mapping, not {type(spec).__name__}")
    unknown = set(spec) - set(SPACE_SECTIONS)
    if unknown:
        raise ConfigError(f"search space '{path}': unknown section(s) {sorted(unknown)}; allowed: {list(SPACE_SECTIONS)}")
    num_samples = spec.get("num_samples", 1)
    if not (is_int(num_samples) and num_samples >= 1):
        raise ConfigError(f"search space '{path}': num_samples = {num_samples!r} must be an integer >= 1")
    for key in ("seed", "keep_checkpoints"):
        value = spec.get(key)
        if value is not None and not (is_int(value) and value >= 0):
            raise ConfigError(f"search space '{path}': {key} = {value!r} must be an integer >= 0")
    if not isinstance(spec.get("defaults_first", True), bool):
        raise ConfigError(f"search space '{path}': defaults_first = {spec['defaults_first']!r} must be true or false")
    search = {"algorithm": "tpe", "startup_trials": STARTUP_TRIALS, **(spec.get("search") or {})}
    if set(search) != {"algorithm", "startup_trials"} or search["algorithm"] not in SEARCHES:
        raise ConfigError(f"search space '{path}': search = {spec.get('search')!r}: give {{algorithm: one of {list(SEARCHES)}, startup_trials: N}}")
    if not (is_int(search["startup_trials"]) and search["startup_trials"] >= 0):
        raise ConfigError(f"search space '{path}': search startup_trials = {search['startup_trials']!r} must be an integer >= 0")
    spec["search"] = search
    space = spec.get("space") or {}
    if not space:
        raise ConfigError(f"search space '{path}': 'space' is empty; name at least one config key to search")
    for key, distribution in space.items():
        _check_distribution(path, key, distribution)
    grids = [key for key, distribution in space.items() if "grid" in distribution]
    if grids and search["algorithm"] == "tpe":
        raise ConfigError(f"search space '{path}': {grids} by grid need search: {{algorithm: random}} (TPE samples; use choice)")
    return spec


def _check_distribution(path, key, distribution):
    where = f"search space '{path}', parameter '{key}'"
    if not isinstance(distribution, dict) or len(distribution) != 1 or next(iter(distribution)) not in DISTRIBUTIONS:
        raise ConfigError(f"{where} = {distribution!r}: give one of {list(DISTRIBUTIONS)}, e.g. {{choice: [a, b]}}")
    kind, values = next(iter(distribution.items()))
    if kind in ("choice", "grid"):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {kind} {values!r} is empty; list at least one value")
        return
    if not isinstance(values, list) or len(values) != 2:
        raise ConfigError(f"{where}: {kind} needs [low, high], got {values!r}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{where}: {kind} range [{low}, {high}] is empty (low must be < high)")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")


def searched_keys(space, path, given):
    """The space less the keys ``given`` sets (the command line's ``--key=value``): a value you set
    is kept, not searched, and the search says so."""
    fixed = [key for key in space if key in given]
    if fixed and len(fixed) == len(space):
        raise ConfigError(f"search space '{path}': you set every key it searches ({', '.join(fixed)}); nothing is left to search")
    if fixed:
        values = ", ".join(f"{key}={given[key]!r}" for key in fixed)
        getLogger().warning(f"search space '{path}': {values} as you set, not searched")
    return {key: value for key, value in space.items() if key not in fixed}


def check_space_keys(spec, path, model, dataset, config_file_list, config_dict):
    """Every searched key must be a config key of the model: a typo fails before any trial."""
    from recbole_diffusion.config import Config

    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    for key, distribution in spec["space"].items():
        if key not in config.final_config_dict:
            raise ConfigError(f"search space '{path}': parameter '{key}' is not a config key of {model} on {dataset}")
        for kind, values in distribution.items():  # a listed value that RecBole would run as code
            for value in values if kind in ("choice", "grid") else []:
                check_no_code({**config.final_config_dict, key: value}, config.model_class, f"search space '{path}': {kind} value of")
    return config


def to_ray_space(space):
    """Ray's domains for a space. Values of keys with list values (layer sizes) travel as their text,
    because Ray reads a list inside a config as more parameters to resolve (see :func:`from_ray`)."""
    from ray import tune

    makers = {
        "choice": tune.choice,
        "grid": tune.grid_search,
        "uniform": lambda bounds: tune.uniform(*bounds),
        "loguniform": lambda bounds: tune.loguniform(*bounds),
        "randint": lambda bounds: tune.randint(*bounds),
    }
    listed = _listed_keys(space)
    return {
        key: makers[kind]([repr(value) for value in values] if key in listed else values)
        for key, distribution in space.items()
        for kind, values in distribution.items()
    }


def from_ray(params, space):
    """A trial's values as config values (the inverse of :func:`to_ray_space`'s text for lists)."""
    listed = _listed_keys(space)
    return {key: ast.literal_eval(value) if key in listed and isinstance(value, str) else value for key, value in params.items()}


def _listed_keys(space):
    return {
        key for key, distribution in space.items() for kind, values in distribution.items()
        if kind in ("choice", "grid") and any(isinstance(value, (list, tuple)) for value in values)
    }


def defaults_point(space, config):
    """The model's own value of every searched key (grid keys excepted: a grid tries every value),
    in Ray's form: the search's first trial."""
    listed = _listed_keys(space)
    return {
        key: repr(config[key]) if key in listed else config[key]
        for key, distribution in space.items() if "grid" not in distribution
    }


def _trial(params, base_config, config_file_list, space, experiment):
    """One Tune trial: an ordinary run that reports the validation score after every evaluation.
    Its training state after the latest validation is kept in its checkpoint folder, so that a
    trial a resumed search restarts goes on from there."""
    import recbole_diffusion  # noqa: F401  (a Ray worker is a fresh interpreter: install the hooks)
    from ray import tune

    from recbole_diffusion.quick_start import objective_function

    def report(epoch, valid_score, best):  # the scheduler compares valid_score; the table reads best
        tune.report({REPORTED_METRIC: float(valid_score), "epoch": epoch + 1, **best})

    # In the experiment folder itself (Ray runs a trial in a session folder and copies it over)
    checkpoints = trial_checkpoints(experiment, tune.get_context().get_trial_id())
    state_file = os.path.join(checkpoints, TRIAL_STATE)
    if not os.path.isfile(state_file):  # restarted before its first validation: from scratch
        shutil.rmtree(checkpoints, ignore_errors=True)
    config_dict = {**base_config, **from_ray(params, space), "checkpoint_dir": checkpoints}
    result = objective_function(config_dict=config_dict, config_file_list=config_file_list, callback_fn=report, state_file=state_file)
    final = {
        REPORTED_METRIC: float(result["best_valid_score"]), "finished": True, "checkpoint": result["saved_model_file"],
        "epoch": result["epochs"], "best_epoch": result["best_epoch"], "best_valid_score": float(result["best_valid_score"]),
        "validations": result["validations"],
    }
    final.update({f"valid/{k}": float(v) for k, v in (result["best_valid_result"] or {}).items()})
    final.update({f"test/{k}": float(v) for k, v in (result["test_result"] or {}).items()})
    tune.report(final)
    if os.path.isfile(state_file):  # a trial that never validated has none
        os.remove(state_file)


def run_search(
    model, dataset, space_file, config_file_list=None, config_dict=None, ray_address=None, storage_path="ray_results", name=None,
    resume=False, num_samples=None, reuse=False, scheduler=None,
):
    """Run (or resume) a Ray Tune search; returns ``(best, trials)``.

    ``resume`` continues an interrupted search of the same settings from Ray's state (pickles:
    only folders you made); a finished one is returned from its JSON record. ``reuse`` returns a
    finished search of the same settings too, and refuses an interrupted one without ``resume``.

    ``best`` has the best trial's config, valid metrics, test metrics and checkpoint; ``trials`` is
    a pandas DataFrame of every trial (also written to ``<storage_path>/<name>/trials.csv``).
    Without ``ray_address`` a new local Ray instance is started (never a leftover cluster's address).
    ``num_samples`` replaces the space file's, ``scheduler`` updates its ASHA settings.
    """
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    spec = load_search_space(space_file)
    if num_samples is not None:
        spec["num_samples"] = num_samples
    spec["scheduler"] = {**(spec.get("scheduler") or {}), **(scheduler or {})}
    spec["space"] = searched_keys(spec["space"], space_file, config_dict or {})
    config_file_list = [os.path.abspath(path) for path in config_file_list or []]
    base_config = {**(spec.get("config") or {}), **(config_dict or {}), "model": model}
    if dataset is not None:
        base_config["dataset"] = dataset
    config = check_space_keys(spec, space_file, model, dataset, config_file_list, base_config)
    # Trials run in their own directories: pin paths, validate every epoch so ASHA can judge.
    # (RecBole's final data_path is <data_path>/<dataset>: the trials get the folder above it)
    if not (is_int(config["eval_step"]) and config["eval_step"] >= 1):
        raise ConfigError(f"config key 'eval_step' = {config['eval_step']!r}: a search selects on validation, give an integer >= 1")
    base_config.update(data_path=os.path.dirname(os.path.abspath(config["data_path"])), show_progress=False)
    base_config.update({  # the other paths (item_emb_path, ...), from wherever they were given
        key: os.path.abspath(value) for key, value in config.final_config_dict.items()
        if key.endswith("_path") and key != "data_path" and isinstance(value, str)
    })
    base_config["dataset"] = config["dataset"]
    mode = "max" if config["valid_metric_bigger"] else "min"
    seed = spec.get("seed", config["seed"])  # the sampler's: the same configs on every run
    defaults = defaults_point(spec["space"], config) if spec.get("defaults_first", True) else {}
    name = name or f"{model}-{config['dataset']}"
    storage_path = os.path.abspath(storage_path)
    experiment = os.path.join(storage_path, name)
    settings = {"model": model, "space": spec, "config": dict(base_config), "config_files": config_file_list}
    if resume or reuse:
        stored = stored_search(experiment, settings)
        if stored is not None:
            return stored
        if not resume and os.path.isdir(experiment):
            raise SearchError(
                f"search '{experiment}' was interrupted earlier; its folder holds Ray's state, which is pickles (loading "
                "them runs code): if you made it, continue it with the same command and --resume; else delete the folder"
            )

    try:
        with signals_interrupt():  # ray.init's own SIGTERM handler exits without a word: the caller's stays
            ray.init(address=ray_address or "local", ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        raise SearchError(
            f"cannot join the Ray cluster at --ray_address={ray_address}: {str(error).splitlines()[0]}. Is its head up, "
            "and of this Ray version? A head started by `ray start` asks for its token: set RAY_AUTH_MODE=token (the "
            "token from ~/.ray/auth_token on the head, or RAY_AUTH_TOKEN)"
        ) from None
    resources = trial_resources(spec.get("resources_per_trial") or {}, ray.cluster_resources().get("GPU", 0))
    base_config["use_gpu"] = resources["gpu"] > 0
    where = f"{resources['gpu']} GPU" if resources["gpu"] else "CPU only"
    getLogger().warning(f"search '{name}': each trial gets {resources['cpu']} CPU, {where}")
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, base_config=base_config, config_file_list=config_file_list, space=spec["space"], experiment=experiment
        ),
        resources,
    )
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=False)
    else:
        max_t = max(int(config["epochs"]), 1) + 1  # beyond the last epoch: ASHA would stop a trial before its test
        asha = {**(spec.get("scheduler") or {})}
        asha["grace_period"] = min(asha.get("grace_period", 1), max_t)  # epochs may be set lower than the space's
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, **asha)  # rungs in epochs, whatever eval_step
        tuner = tune.Tuner(
            trainable,
            param_space=to_ray_space(with_defaults_in_choices(spec, config) if defaults else spec["space"]),
            tune_config=tune.TuneConfig(
                metric=REPORTED_METRIC, mode=mode, scheduler=scheduler, num_samples=int(spec.get("num_samples", 1)),
                search_alg=search_algorithm(spec, defaults, mode, seed),
            ),
            # CSV and JSON logs only: Tune's TensorBoard writer, added by default, closes at exit on a
            # thread, which Python >= 3.12 refuses after an interrupt (a traceback under the error line)
            run_config=tune.RunConfig(
                name=name, storage_path=storage_path, verbose=1, callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],
            ),
        )
        write_record(experiment, settings)
    # Ray's own Ctrl-C handler ends the search quietly, as if it had finished; without it the
    # interrupt reaches us (Ray has saved the experiment's state for --resume all along).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # the loggers are the run config's
    before, start = recorded_wall(experiment), time.perf_counter()  # the interrupted parts' time, if resumed
    try:
        with signals_interrupt():  # also SIGTERM, and Ctrl-C where the process started ignoring it
            results = tuner.fit()
    except KeyboardInterrupt:
        write_record(experiment, settings, wall_s=before + time.perf_counter() - start)
        raise SearchError(
            f"search '{experiment}' was interrupted; continue it with the same command and --resume "
            f"(with --tune, also --tune_dir={os.path.dirname(experiment)} --tune_name={name})"
        ) from None
    _remove_training_states(experiment)
    trials = _trials_table(results, spec["space"], defaults, experiment)
    trials.to_csv(os.path.join(experiment, "trials.csv"), index=False)
    if (trials.status == ERROR).all():
        raise SearchError(
            f"search '{experiment}': all {len(trials)} trials failed; the first: {trials.error.iloc[0]} "
            f"(every trial: {os.path.join(experiment, 'trials.csv')})"
        )
    ranked = _ranked(trials, mode)
    _keep_best_checkpoints(trials, ranked, int(spec.get("keep_checkpoints", 1)))
    trials.to_csv(os.path.join(experiment, "trials.csv"), index=False)
    best_row = trials.loc[ranked[0]]
    best = next(result for result in results if result.path == best_row.trial_dir)
    summary = {
        "config": from_ray({key: best.config[key] for key in spec["space"]}, spec["space"]),
        "valid": {k[len("valid/"):]: v for k, v in best.metrics.items() if k.startswith("valid/")},
        "test": {k[len("test/"):]: v for k, v in best.metrics.items() if k.startswith("test/")},
        "valid_metric": config["valid_metric"],
        "best_valid_score": float(best_row[REPORTED_METRIC]),
        "best_epoch": None if math.isnan(best_row.best_epoch) else int(best_row.best_epoch),
        "wall_s": before + time.perf_counter() - start,  # every part of a resumed search
        "status": best_row.status,
        "defaults": bool(best_row.defaults),
        "seed": seed,
        "checkpoint": best_row.checkpoint,
        "path": best.path,
    }
    write_record(experiment, settings, summary, summary["wall_s"])
    return summary, trials


def with_defaults_in_choices(spec, config):
    """The space, each ``choice`` list that lacks the model's own value extended by it (TPE's
    first trial must lie in the space; random sampling takes any first point)."""
    if spec["search"]["algorithm"] != "tpe":
        return spec["space"]
    return {
        key: {"choice": [*distribution["choice"], config[key]]} if "choice" in distribution and config[key] not in distribution["choice"] else distribution
        for key, distribution in spec["space"].items()
    }


def search_algorithm(spec, defaults, mode, seed):
    """Ray's searcher: Optuna's TPE (the default; its first ``startup_trials`` sampled at random,
    no config run twice while the space has others) or random sampling, seeded by ``seed``, the
    model's defaults first where asked."""
    points = [defaults] if defaults else None
    if spec["search"]["algorithm"] == "random":
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=points, random_state=seed)
    import optuna

    from recbole_diffusion.quick_start.searcher import DistinctOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a dropped repeat is told as failed: not a warning
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec["search"]["startup_trials"])
    return DistinctOptunaSearch(metric=REPORTED_METRIC, mode=mode, points_to_evaluate=points, sampler=sampler)


RECORD_FILE = "recbole_diffusion_search.json"  # beside Ray's state in the experiment folder


def write_record(experiment, settings, best=None, wall_s=0.0):
    """Record (as JSON) what a search runs with, the seconds it has run (its interrupted parts
    too) and, once it has finished, its best trial."""
    os.makedirs(experiment, exist_ok=True)
    with open(os.path.join(experiment, RECORD_FILE), "w", encoding="utf-8") as f:
        json.dump({"settings": settings, "best": best, "wall_s": wall_s}, f, indent=1, sort_keys=True, default=str)


def recorded_wall(experiment):
    """The seconds a search's record says it has run so far (0 for a new one)."""
    path = os.path.join(experiment, RECORD_FILE)
    if not os.path.isfile(path):
        return 0.0
    with open(path, encoding="utf-8") as f:
        return float(json.load(f).get("wall_s") or 0.0)


def stored_search(experiment, settings):
    """``(best, trials)`` of a finished search of these settings, read from its JSON record and
    trials.csv (never Ray's pickled state); None for a search that has not finished. A search
    started with other settings is refused, naming them: it continues only as it was."""
    import pandas as pd

    path = os.path.join(experiment, RECORD_FILE)
    if not os.path.isfile(path):
        if os.path.isdir(experiment):
            raise SearchError(f"search '{experiment}' has no {RECORD_FILE}: it was not started by recbole-diffusion; nothing was resumed")
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    now = json.loads(json.dumps(settings, sort_keys=True, default=str))
    changed = []
    for section, value in now.items():
        before = record["settings"].get(section)
        if isinstance(value, dict) and isinstance(before, dict):
            changed += [f"{section}.{key}" for key in sorted(set(value) | set(before)) if value.get(key) != before.get(key)]
        elif value != before:
            changed.append(section)
    if changed:
        raise SearchError(
            f"search '{experiment}' was started with other settings ({', '.join(changed)}); it continues only as it "
            "was. Run the same command as before, or give the new search another name or folder"
        )
    if record["best"] is None:
        return None
    return record["best"], pd.read_csv(os.path.join(experiment, "trials.csv"))


def trial_resources(requested, cluster_gpus):
    """Ray resources of one trial; ``gpu: auto`` (the default) is a quarter GPU where there are GPUs."""
    resources = {"cpu": 1, "gpu": AUTO, **requested}
    if resources["gpu"] == AUTO:
        resources["gpu"] = AUTO_GPU_SHARE if cluster_gpus > 0 else 0
    if not isinstance(resources["gpu"], (int, float)) or resources["gpu"] < 0:
        raise ConfigError(f"resources_per_trial gpu = {resources['gpu']!r}: a number >= 0 (a fraction shares a GPU) or {AUTO}")
    return resources


def trial_checkpoints(experiment, trial_id):
    """The folder of a trial's checkpoints: ``<experiment>/checkpoints/<trial id>``."""
    return os.path.join(experiment, TRIAL_CHECKPOINTS, trial_id)


def _trial_checkpoint(experiment, trial_id):
    """The best-valid checkpoint a stopped trial wrote (its only one: a restarted trial deletes the
    interrupted run's unless it resumes it), or ''."""
    folder = trial_checkpoints(experiment, trial_id) if trial_id else ""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    files = [os.path.join(folder, name) for name in names if name.endswith(".pth") and name != TRIAL_STATE]
    return max(files, key=os.path.getmtime) if files else ""


def _remove_training_states(experiment):
    """The training states that stopped (pruned) trials leave: no trial of a finished search resumes."""
    folder = os.path.join(experiment, TRIAL_CHECKPOINTS)
    for trial_id in os.listdir(folder) if os.path.isdir(folder) else []:
        path = os.path.join(folder, trial_id, TRIAL_STATE)
        if os.path.isfile(path):
            os.remove(path)


def _ranked(trials, mode):
    """Trial indices, best valid score first; ties keep the trials' order (a resumed search agrees)."""
    return list(trials.sort_values(REPORTED_METRIC, ascending=(mode == "min"), kind="mergesort", na_position="last").index)


def _keep_best_checkpoints(trials, ranked, keep):
    """Delete the checkpoints of all but the ``keep`` best trials."""
    for index in ranked[keep:]:
        path = trials.at[index, "checkpoint"]
        if path and os.path.isfile(path):
            os.remove(path)
        trials.at[index, "checkpoint"] = ""


def _trials_table(results, space, defaults, experiment):
    """One row per trial: searched values, whether they are the model's defaults, status,
    validations, best valid score and its epoch, test metrics, checkpoint and directory.

    The validations and the best are the trial's latest report's, which counts the whole run: a
    trial a resumed search restarted went on from its training state, and Ray keeps only the
    reports made since the restart."""
    import pandas as pd

    rows = []
    for result in results:
        values = {key: (result.config or {}).get(key) for key in space}
        row = from_ray(values, space)
        row["defaults"] = bool(defaults) and all(values[key] == value for key, value in defaults.items())
        metrics = result.metrics or {}
        finished = bool(metrics.get("finished"))
        row["status"] = ERROR if result.error else FINISHED if finished else STOPPED
        row["error"] = type(result.error).__name__ + ": " + str(result.error).splitlines()[-1][:200] if result.error else ""
        row["validations"] = int(metrics.get("validations", 0))
        row[REPORTED_METRIC] = float(metrics.get("best_valid_score", math.nan))
        row["best_epoch"] = float(metrics.get("best_epoch") or math.nan)
        row["epochs"] = float(metrics.get("epoch", math.nan))
        row.update({k: v for k, v in metrics.items() if k.startswith("test/")})
        row["checkpoint"] = "" if result.error else metrics.get("checkpoint") if finished else _trial_checkpoint(experiment, metrics.get("trial_id"))
        row["trial_dir"] = result.path
        rows.append(row)
    # in trial order (the index Ray puts after the trial id in its folder name), however Ray hands them back
    return pd.DataFrame(rows).sort_values("trial_dir", key=lambda dirs: dirs.map(_trial_index), kind="mergesort", ignore_index=True)


TRIAL_FOLDER = re.compile(r"^_?trial_[0-9a-f]+(?:_\d{5})?_(\d+)_")  # _trial_0d0af_00000_0_..., _trial_01b8346e_1_...


def _trial_index(trial_dir):
    match = TRIAL_FOLDER.match(os.path.basename(trial_dir))
    return int(match.group(1)) if match else math.inf
