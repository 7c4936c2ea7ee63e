"""Train several models on one split over several seeds, and report quality, cost and significance.

Each (model, seed) runs in a fresh process (so its peak memory is its own) through the plugin's
usual pipeline; :mod:`.report` writes the tables and the page.
"""

import hashlib
import json
import os
import resource
import threading
import time
from logging import getLogger
from multiprocessing import get_context
from multiprocessing.connection import wait

import torch

from recbole_diffusion.quick_start.report import append_jsonl, best_of_run, mean, per_user_values, read_jsonl, write_report
from recbole_diffusion.utils.checks import ConfigError, is_int
from recbole_diffusion.utils.utils import signals_interrupt

# RecBole's model types by how their data is split and evaluated (a comparison stays in one).
SPLIT_FAMILIES = {
    "GENERAL": "general", "TRADITIONAL": "general", "KNOWLEDGE": "general",
    "SEQUENTIAL": "sequential", "CONTEXT": "context-aware", "DECISIONTREE": "context-aware",
}
# What decides a model's test set: compared models must agree on every one of these.
SPLIT_KEYS = (
    "eval_args", "benchmark_filename", "rm_dup_inter", "val_interval", "filter_inter_by_user_or_item",
    "user_inter_num_interval", "item_inter_num_interval",
)
# Every model is evaluated as the first one is (its metrics, cut-offs and selection metric).
SHARED_EVALUATION_KEYS = ("metrics", "topk", "valid_metric")
# A tuned comparison trains every trial and run to early stopping, as the DiffRec protocol does:
# validate every 5 epochs, stop after 4 validations (20 epochs) without gain, at most 1000 epochs
# (a cap none reached on ML-1M; the report says where one does). Keys the user sets win. RecBole
# stops at the (stopping_step + 1)-th validation without gain.
CONVERGENCE = {"epochs": 1000, "eval_step": 5, "stopping_step": 3}
CONVERGENCE_GRACE = 50  # ASHA's first rung, in epochs: slow starters (LightGCN) are not cut at epoch 5
RUN_STATES = "states"  # <output>/states/: the training states of the runs in progress


class _Clock:
    """Wall and CPU seconds of each call of a wrapped function, and the host load after it."""

    def __init__(self):
        self.wall, self.cpu, self.load = [], [], []

    @classmethod
    def of(cls, data):
        """The clock :meth:`data` described."""
        clock = cls()
        clock.wall, clock.cpu, clock.load = list(data["wall"]), list(data["cpu"]), list(data["load"])
        return clock

    def data(self):
        return {"wall": self.wall, "cpu": self.cpu, "load": self.load}

    def wrap(self, function):
        def wrapper(*args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall.append(time.perf_counter() - start)
                self.cpu.append(time.process_time() - cpu_start)
                self.load.append(os.getloadavg()[0])

        return wrapper


def _peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_run(model, dataset, config_file_list=None, config_dict=None, per_user=False, state_file=None):
    """Train and test one model; returns its test metrics and what it cost.

    ``s_per_epoch`` is the mean training time of an epoch, ``s_per_valid`` of a validation pass,
    ``s_test`` the final test pass (best checkpoint reloaded), ``s_per_eval`` the mean of all
    evaluation passes; ``cpu_s_*`` are the same in CPU seconds of this process and ``load_avg`` the
    mean 1-minute host load sampled after each (above the thread count, other jobs shared the
    cores). ``peak_mem_mb`` is the process's peak RSS (CPU) or peak allocated CUDA memory. With
    ``per_user``, ``per_user`` holds each test user's value of every top-k metric (for paired tests).
    With ``state_file``, the run keeps its training state and its measurements so far there after
    every validation, and a run that finds the file goes on from it: the same result, its costs
    summed over both parts (``resumed``: how many times it went on).
    """
    from recbole.utils import init_logger, init_seed

    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start import build

    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    _, (train_data, valid_data, test_data), net, trainer = build(config)
    train_clock, eval_clock, valid_scores = _Clock(), _Clock(), []
    before = {"wall_s": 0.0, "peak_mem_mb": 0.0, "resumed": 0}
    ended = False
    if state_file and os.path.isfile(state_file):
        ended, extra = trainer.restore_training_state(state_file, train_data)
        train_clock, eval_clock = _Clock.of(extra["train"]), _Clock.of(extra["eval"])
        valid_scores = [tuple(pair) for pair in extra["valid_scores"]]
        before = {**extra["before"], "resumed": extra["before"]["resumed"] + 1}
    trainer._train_epoch = train_clock.wrap(trainer._train_epoch)
    trainer.evaluate = eval_clock.wrap(trainer.evaluate)
    test_users = PerUserCapture(trainer, config["USER_ID_FIELD"]) if per_user else None
    start = time.perf_counter()

    def after_validation(epoch, score):
        valid_scores.append((epoch, score))
        if state_file:
            so_far = {
                "wall_s": before["wall_s"] + time.perf_counter() - start,
                "peak_mem_mb": max(before["peak_mem_mb"], _peak_memory_mb(config["device"])), "resumed": before["resumed"],
            }
            extra = {"train": train_clock.data(), "eval": eval_clock.data(), "valid_scores": valid_scores, "before": so_far}
            trainer.save_training_state(state_file, epoch, train_data, extra)

    if ended:
        best_valid_result = trainer.best_valid_result
    else:
        _, best_valid_result = trainer.fit(train_data, valid_data, saved=True, callback_fn=after_validation)
    n_valid = len(eval_clock.wall)
    test_result = trainer.evaluate(test_data, load_best_model=True)
    wall = before["wall_s"] + time.perf_counter() - start
    best_epoch, _ = best_of_run(valid_scores, config["valid_metric_bigger"])
    getLogger().info(f"test result: {test_result}")
    return {
        "model": config.model_label,
        "test_result": dict(test_result),
        "best_valid_result": dict(best_valid_result or {}),
        "epochs": len(train_clock.wall),
        "best_epoch": best_epoch,
        "first_valid_epoch": valid_scores[0][0] + 1 if valid_scores else None,
        "s_per_epoch": mean(train_clock.wall),
        "s_per_valid": mean(eval_clock.wall[:n_valid]),
        "s_test": eval_clock.wall[-1],
        "s_per_eval": mean(eval_clock.wall),
        "cpu_s_per_epoch": mean(train_clock.cpu),
        "cpu_s_per_valid": mean(eval_clock.cpu[:n_valid]),
        "load_avg": mean(train_clock.load + eval_clock.load),
        "wall_s": wall,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "peak_mem_mb": max(before["peak_mem_mb"], _peak_memory_mb(config["device"])),
        "saved_model_file": trainer.saved_model_file,
        "eval_batch_size": config["eval_batch_size"],
        "threads": torch.get_num_threads(),
        "seed": config["seed"],
        **({"resumed": before["resumed"]} if before["resumed"] else {}),
        **({"per_user": test_users.values} if per_user else {}),
    }


class PerUserCapture:
    """Each user's value of every top-k metric in a trainer's latest evaluation (the test, last).

    The user ids come from the batches RecBole's collector sees, the values from RecBole's own
    evaluation data (:func:`..report.per_user_values`)."""

    def __init__(self, trainer, user_field):
        self.values, users = {}, []
        collect, evaluate = trainer.eval_collector.eval_batch_collect, trainer.evaluator.evaluate

        def collect_with_users(scores, interaction, positive_u, positive_i):
            users.extend(interaction[user_field].tolist())
            return collect(scores, interaction, positive_u, positive_i)

        def evaluate_per_user(struct):
            self.values = per_user_values(trainer.evaluator, struct, list(users))
            users.clear()
            return evaluate(struct)

        trainer.eval_collector.eval_batch_collect = collect_with_users
        trainer.evaluator.evaluate = evaluate_per_user


class ComparisonInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM during a comparison; the runs that finished are kept for a resume."""


def compare(
    models, dataset, config_file_list=None, config_dict=None, model_config=None, output_dir=None, seeds=None, reference=None,
    tune_trials=None, ray_address=None, resume=False, jobs=1,
):
    """Run every model with every seed, each (model, seed) in a fresh process, on one split.

    ``config_dict`` applies to every model, ``model_config[name]`` (a dict) to one model only; the
    evaluation keys (``metrics``, ``topk``, ``valid_metric``) of the first model apply to all. The
    split is RecBole's for ``dataset`` (seeded by the config's ``seed``, not by the run's seed,
    which seeds the model and training only). Models of different RecBole types (general,
    sequential, context-aware) split the data differently: they are refused before any training.
    A crashed run is kept with its error (``"error"``), never dropped. Returns the runs; with
    ``output_dir``, writes the report (:func:`..report.write_report`) and logs every run in
    ``runs.jsonl`` there: a rerun reuses the finished runs whose own settings are unchanged and runs
    the crashed ones again. ``jobs`` runs train at once (each with an equal share of the CPU
    threads); the log and the report keep the models' and seeds' order.

    With ``tune_trials`` N, every model is first tuned on validation with the same budget: N trials
    of its space ``properties/tune/<Model>.yaml`` (TPE, the defaults first, ASHA from epoch
    :data:`CONVERGENCE_GRACE`), every trial and run trained to early stopping (:data:`CONVERGENCE`,
    unless the config sets those keys), then each model's best config runs over the seeds and is
    tested; the test set never selects anything. The searches are kept under
    ``<output_dir>/tuning/`` and resume.
    """
    config_dict, model_config = config_dict or {}, model_config or {}
    check_request(models, output_dir, reference, tune_trials, jobs)
    configs, extra_keys = plan(models, dataset, config_file_list, config_dict, model_config)
    first = configs[models[0]]
    shared = {key: first[key] for key in SHARED_EVALUATION_KEYS}
    getLogger().warning(
        f"comparison of {', '.join(models)} on {first['dataset']}: every model is evaluated with {models[0]}'s "
        f"{_settings_text(shared)} (--metrics, --topk, --valid_metric set them for all)"
    )
    from_defaults, search_wall = [], {}
    if tune_trials:
        model_config = {model: {**convergence_protocol(configs[model]), **model_config.get(model, {})} for model in models}
        # every search selects by the same validation metric, the one the comparison reports
        searched = {**config_dict, **shared}
        tuned, from_defaults, search_wall = tune_models(
            models, dataset, config_file_list, searched, extra_keys, tune_trials, output_dir, ray_address, resume, model_config
        )
        model_config = {model: {**model_config.get(model, {}), **tuned[model]} for model in models}
    seeds = list(seeds or [first["seed"]])
    reference = reference or models[0]
    # what a run depends on: a logged run is reused when its own settings are unchanged
    common = {
        "dataset": first["dataset"], "config_files": [os.path.abspath(path) for path in config_file_list or []],
        "config": config_dict, "evaluation": shared, "split_seed": first["seed"],
    }
    log = os.path.join(output_dir, "runs.jsonl") if output_dir else None
    logged = read_jsonl(log) if log else []
    settings = {
        model: json.loads(json.dumps({**common, "model_config": model_config.get(model, {})}, default=str)) for model in models
    }
    done, pending, state_files = {}, [], {}
    for model in models:
        label = configs[model].model_label
        for seed in seeds:
            run = next((
                r for r in logged if r["model"] == label and r["seed"] == seed and r.get("settings") == settings[model] and "error" not in r
            ), None)  # a crashed run is logged for the record and run again
            if run is not None:
                done[model, seed] = run
                continue
            overrides = {**shared, **config_dict, **model_config.get(model, {}), "seed": seed}
            overrides.update(extra_config_keys=extra_keys[model], split_seed=first["seed"])
            state_files[model, seed] = run_state_file(output_dir, label, seed, settings[model])
            pending.append(((model, seed), label, overrides, state_files[model, seed]))
    if log:
        getLogger().warning(f"comparison: {len(done)} of {len(done) + len(pending)} runs reused from {log}, {len(pending)} to train")
    if output_dir and pending:
        os.makedirs(os.path.join(output_dir, RUN_STATES), exist_ok=True)

    def finished(key, run):
        run["settings"] = settings[key[0]]
        if log:
            append_jsonl(log, run)
        done[key] = run
        if state_files[key] and os.path.isfile(state_files[key]):  # a crashed run starts again
            os.remove(state_files[key])

    try:
        _run_in_fresh_processes(get_context("spawn"), dataset, config_file_list, pending, jobs, finished)
    except RunsInterrupted as interrupted:
        kept = (
            f"the finished runs are kept in {log}: the same command resumes, the runs in progress from their last validation"
            if log else "no --output, nothing kept"
        )
        during = " and ".join(f"{model}, seed {seed}" for model, seed in interrupted.running)
        raise ComparisonInterrupted(f"the comparison was interrupted during {during}; {kept}") from None
    runs = [done[model, seed] for model in models for seed in seeds]
    if output_dir:
        seeds_text = ", ".join(map(str, seeds))
        if tune_trials:
            budget = f"each tuned with {tune_trials} trials (its defaults first, TPE, ASHA on valid)"
        else:
            budget = "defaults but for the settings below" if any(model_config.get(model) for model in models) else "defaults"
        fitted = [model for model in models if configs[model]["MODEL_TYPE"].name == "TRADITIONAL"]
        fitted_text = f" ({', '.join(fitted)}: fitted once)" if fitted else ""
        title = (
            f"{' vs '.join(models)} on {first['dataset']}: split {_split_text(first)}, seeds {seeds_text}, "
            f"{', '.join(filter(None, [budget, _training_text(models, configs, model_config, fitted)]))}{fitted_text}, "
            f"valid {first['valid_metric']}"
        )
        given = {key: value for key, value in config_dict.items() if key != "extra_config_keys"}
        settings_text = {
            **({"every model (--key=value)": _settings_text(given)} if given else {}),
            **{
                configs[model].model_label: _settings_text(model_config[model]) + (" (its defaults won the search)" if model in from_defaults else "")
                for model in models if model_config.get(model)
            },
        }
        searches = {configs[model].model_label: wall for model, wall in search_wall.items()}
        write_report(output_dir, title, runs, configs[reference].model_label, runs_metric_names(runs), settings_text, searches)
    return runs


def _training_text(models, configs, model_config, fitted):
    """How the models that train were trained, from each one's config and own keys (its run's
    precedence): once when they share it, else model by model."""
    texts = {}
    for model in models:
        if model not in fitted:
            value = {key: model_config.get(model, {}).get(key, configs[model][key]) for key in ("epochs", "eval_step", "stopping_step")}
            every = "every epoch" if value["eval_step"] == 1 else f"every {value['eval_step']} epochs"
            texts[configs[model].model_label] = (
                f"at most {value['epochs']} epochs, validated {every}, stopped after {value['stopping_step'] + 1} validations without gain"
            )
    if len(set(texts.values())) <= 1:
        return next(iter(texts.values()), "")
    return "trained " + "; ".join(f"{label}: {text}" for label, text in texts.items())


def _settings_text(values):
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items())


def read_model_config(path, models):
    """``{model: {key: value}}`` from a YAML file of one section per compared model (data only:
    no ``!!python`` tags); the keys are checked against each model's config with the rest."""
    from recbole_diffusion.config.configurator import read_yaml_file

    sections = read_yaml_file(path, f"--model_config={path}") or {}
    if not isinstance(sections, dict) or not all(isinstance(section, dict) for section in sections.values()):
        raise ConfigError(f"--model_config={path}: give one section of keys per model, e.g. 'DIN: {{mlp_hidden_size: [80, 40]}}'")
    strangers = [str(name) for name in sections if name not in models]
    if strangers:
        raise ConfigError(f"--model_config={path}: {', '.join(strangers)} not among the compared models ({', '.join(models)})")
    return sections


def check_request(models, output_dir, reference, tune_trials, jobs=1):
    """What a comparison is asked for, checked before any data is loaded: distinct models, a
    reference among them, a budget of at least one trial, at least one job, and an output folder it
    can write."""
    repeated = sorted({model for model in models if models.count(model) > 1})
    if repeated:
        raise ConfigError(f"--compare names {', '.join(repeated)} more than once; give each model once (--seeds repeats runs)")
    if reference is not None and reference not in models:
        raise ConfigError(f"--reference {reference!r} is not one of the compared models {models}")
    if tune_trials is not None and not (is_int(tune_trials) and tune_trials >= 1):
        raise ConfigError(f"--tune_trials={tune_trials!r}: give an integer >= 1 (leave it out for a comparison of the defaults)")
    if not (is_int(jobs) and jobs >= 1):
        raise ConfigError(f"--jobs={jobs!r}: give the number of runs to train at once, an integer >= 1")
    if tune_trials and not output_dir:
        raise ConfigError("a tuned comparison (--tune_trials) needs an --output folder for its searches")
    if output_dir:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--output={output_dir}: cannot be created ({error.strerror})") from None
        if not os.access(output_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"--output={output_dir}: this user cannot write there")


def convergence_protocol(config):
    """The :data:`CONVERGENCE` keys a tuned comparison gives a model that trains (a fitted-once
    model validates once), less those the user set."""
    if config["MODEL_TYPE"].name == "TRADITIONAL":
        return {}
    return {key: value for key, value in CONVERGENCE.items() if key not in config.external_config_dict}


def tune_models(
    models, dataset, config_file_list, config_dict, extra_keys, trials, output_dir, ray_address=None, resume=False, model_config=None,
):
    """``({model: its best searched values}, [models whose defaults trial won], {model: search wall
    seconds})``, each model searched with ``trials`` trials of its space (``extra_keys[model]``: the
    keys of ``config_dict`` meant for other compared models; ``model_config[model]``: its own keys).
    ASHA's first rung is :data:`CONVERGENCE_GRACE` epochs. A finished search is reused from its
    JSON record; an interrupted one continues only with ``resume`` (Ray's state is pickles: only
    folders you made)."""
    from recbole_diffusion.quick_start.tune import load_search_space, run_search

    spaces = {model: search_space_file(model) for model in models}
    for model, path in spaces.items():
        grids = [key for key, spec in load_search_space(str(path))["space"].items() if "grid" in spec]
        if grids:
            raise ConfigError(f"--tune_trials: {path} searches {grids} by grid, which multiplies the trials; use choice")
    best, from_defaults, wall = {}, [], {}
    for model in models:
        own = {**config_dict, **(model_config or {}).get(model, {}), "extra_config_keys": extra_keys[model]}
        found, _ = run_search(
            model, dataset, str(spaces[model]), config_file_list, own, ray_address=ray_address,
            storage_path=os.path.join(output_dir, "tuning"), name=model, resume=resume, reuse=True, num_samples=trials,
            scheduler={"grace_period": CONVERGENCE_GRACE},
        )
        best[model] = found["config"]
        wall[model] = found.get("wall_s")
        from_defaults += [model] if found["defaults"] else []
    with open(os.path.join(output_dir, "tuned_configs.json"), "w", encoding="utf-8") as f:
        json.dump(best, f, indent=2, default=str)
    return best, from_defaults, wall


def search_space_file(model):
    """``properties/tune/<Name>.yaml`` of the model's class, else of its nearest base class that has
    one (LTDiffRec searches L-DiffRec's space)."""
    from recbole_diffusion.hooks import PROPERTIES
    from recbole_diffusion.utils import get_model

    for cls in get_model(model).__mro__:
        path = PROPERTIES / "tune" / f"{cls.__name__}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"--tune_trials: no search space for {model} (expected properties/tune/{model}.yaml)")


class RunsInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while runs were training; ``running``: the (model, seed) keys they had."""

    def __init__(self, running):
        super().__init__()
        self.running = running


def run_state_file(output_dir, label, seed, settings):
    """Where a run keeps its training state until it ends: ``<output>/states/``, named by model,
    seed and a digest of its settings (a run of other settings does not go on from it); None
    without an output folder."""
    if not output_dir:
        return None
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(output_dir, RUN_STATES, f"{label}-{seed}-{digest}.pth")


def _run_in_fresh_processes(context, dataset, config_file_list, pending, jobs, finished):
    """Train each pending ``(key, model, overrides, state file)`` in a fresh interpreter, at most
    ``jobs`` at once, and call ``finished(key, run)`` as each ends (in the order they end). A crash comes back
    as the run's ``error``. An interrupt of this process (Ctrl-C, SIGTERM) ends every running child
    and raises :class:`RunsInterrupted`; a child whose parent died (``kill -9``) ends itself, so
    that no orphan trains on. With ``jobs`` > 1, each child gets an equal share of the CPU threads."""
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    waiting, running = list(pending), {}  # running: the child's pipe -> (key, model, seed, child)
    try:
        with signals_interrupt():
            while waiting or running:
                while waiting and len(running) < jobs:
                    key, model, overrides, state_file = waiting.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    child = context.Process(
                        target=_child, args=(send, os.getpid(), model, dataset, config_file_list, overrides, threads, state_file)
                    )
                    child.start()
                    send.close()
                    running[receive] = (key, model, overrides["seed"], child)
                for receive in wait(list(running)):
                    key, model, seed, child = running.pop(receive)
                    finished(key, _result(receive, child, model, seed))
    except KeyboardInterrupt:
        raise RunsInterrupted([key for key, *_ in running.values()]) from None
    finally:
        for *_, child in running.values():
            if child.is_alive():
                child.terminate()
            child.join()


def _result(receive, child, model, seed):
    """The run a finished child sent, or the error it ended with."""
    try:
        result = receive.recv()
    except EOFError:  # killed, or died in native code, before it could answer
        child.join()
        result = {"error": f"the run's process ended without a result (exit code {child.exitcode})"}
    child.join()
    return result if "error" not in result else {"model": model, "seed": seed, **result}


def _child(send, parent, model, dataset, config_file_list, config_dict, threads=None, state_file=None):
    import recbole_diffusion  # noqa: F401  (the child is a fresh interpreter: install the hooks)

    if threads is not None:
        torch.set_num_threads(threads)

    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    try:
        result = measure_run(model, dataset, config_file_list, config_dict, per_user=True, state_file=state_file)
    except Exception as error:  # noqa: BLE001  (reported in the table, never silently dropped)
        result = {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
    send.send(result)


def _end_with_parent(parent, every_s=1.0):
    """Exit this process once ``parent`` is gone (it was reparented)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _split_text(config):
    """RecBole's eval_args in words: 'random 0.8/0.1/0.1 per user, full ranking'."""
    args = config["eval_args"] or {}
    modes = args.get("mode") or {}
    mode = modes.get("test") if isinstance(modes, dict) else modes
    evaluated = {"full": "full ranking", "labeled": "labelled rows"}.get(mode, f"{mode} sampled ranking")
    if config["benchmark_filename"]:
        return f"as published in its {'/'.join(config['benchmark_filename'])} files, {evaluated}"
    (kind, value), = (args.get("split") or {"?": None}).items()
    order = {"RO": "random", "TO": "by time"}.get(args.get("order"), args.get("order"))
    split = {"RS": f"{order} {'/'.join(map(str, value or []))}", "LS": f"leave-one-out {order}"}.get(kind, f"{kind} {value}")
    return f"{split} per {args.get('group_by') or 'row'}, {evaluated}"


def runs_metric_names(runs):
    names = []
    for run in runs:
        names += [name for name in run.get("test_result", {}) if name not in names]
    return names


def plan(models, dataset, config_file_list, config_dict, model_config):
    """Each model's Config (every error before any training) and the keys it lets pass for others;
    models of different RecBole types, or that would split the data differently, are refused."""
    extra_keys, configs = keys_for_other_models(models, dataset, config_file_list, config_dict, model_config)
    types = {model: SPLIT_FAMILIES.get(configs[model]["MODEL_TYPE"].name, "other") for model in models}
    if len(set(types.values())) > 1:
        listing = ", ".join(f"{model} ({kind})" for model, kind in types.items())
        raise ConfigError(
            f"--compare mixes model types: {listing}. RecBole splits and evaluates each type differently "
            "(general: every user's held-out items; sequential: the next item of each history; context-aware: "
            "labelled rows), so their metrics would not describe the same test set. Compare models of one type"
        )
    for key in SPLIT_KEYS:  # e.g. a model's own yaml with another eval_args
        values = {model: configs[model][key] for model in models}
        if any(value != values[models[0]] for value in values.values()):
            listing = "; ".join(f"{model}: {value!r}" for model, value in values.items())
            raise ConfigError(
                f"--compare: the models would be tested on different data, '{key}' differs ({listing}). Set it once "
                "for all of them (a config file or --key=value)"
            )
    return configs, extra_keys


def keys_for_other_models(models, dataset, config_file_list, config_dict, model_config):
    """{model: the keys of ``config_dict`` it does not know but another compared model does}.

    One command line configures every compared model (``--steps=5`` for DiffRec beside BPR); a key
    that no compared model knows is still a typo and fails, naming the key.
    """
    from recbole_diffusion.config import Config
    from recbole_diffusion.config.validation import known_keys, unknown_key_error

    shared = [key for key in config_dict if key != "extra_config_keys"]
    declared = list(config_dict.get("extra_config_keys") or [])
    configs, unknown = {}, {}  # one Config per model: its known keys, and its own errors before any training
    for model in models:
        own = {**config_dict, **model_config.get(model, {}), "extra_config_keys": declared + shared}
        configs[model] = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=own)
        unknown[model] = [key for key in shared if key not in known_keys(configs[model], declared=False) and key not in declared]
    for key in shared:
        if all(key in unknown[model] for model in models):
            known = set.union(*(known_keys(config, declared=False) for config in configs.values()))
            raise unknown_key_error(key, config_dict[key], " / ".join(models), known)
    return {model: declared + unknown[model] for model in models}, configs
