"""Train several models on one dataset, split and seed, and tabulate quality and cost.

Each model runs in a fresh process (so its peak memory is its own) through the plugin's usual
pipeline; the result is a markdown table, a CSV and an HTML bar chart of the metrics.
"""

import csv
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

# Every model is evaluated as the first one is (its metrics, cut-offs and selection metric).
SHARED_EVALUATION_KEYS = ("metrics", "topk", "valid_metric")
COST_COLUMNS = ["epochs", "best_epoch", "s_per_epoch", "s_per_eval", "params", "peak_mem_mb"]


class _Clock:
    """Wall and CPU seconds of each call of a wrapped function, and the host load after it."""

    def __init__(self):
        self.wall, self.cpu, self.load = [], [], []

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


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def _peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_run(model, dataset, config_file_list=None, config_dict=None):
    """Train and test one model; returns its test metrics and what it cost.

    ``s_per_epoch`` is the mean training time of an epoch, ``s_per_valid`` of a validation pass,
    ``s_test`` the final test pass (best checkpoint reloaded), ``s_per_eval`` the mean of all
    evaluation passes; ``cpu_s_*`` are the same in CPU seconds of this process and ``load_avg`` the
    mean 1-minute host load sampled after each (above the thread count, other jobs shared the
    cores). ``peak_mem_mb`` is the process's peak RSS (CPU) or peak allocated CUDA memory.
    """
    from logging import getLogger

    from recbole.utils import init_logger, init_seed

    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start import build

    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    _, (train_data, valid_data, test_data), net, trainer = build(config)
    train_clock, eval_clock, valid_scores = _Clock(), _Clock(), []
    trainer._train_epoch = train_clock.wrap(trainer._train_epoch)
    trainer.evaluate = eval_clock.wrap(trainer.evaluate)
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, callback_fn=lambda epoch, score: valid_scores.append((epoch, score))
    )
    n_valid = len(eval_clock.wall)
    test_result = trainer.evaluate(test_data, load_best_model=True)
    wall = time.perf_counter() - start
    pick = max if config["valid_metric_bigger"] else min
    best_epoch = pick(valid_scores, key=lambda pair: pair[1])[0] + 1 if valid_scores else None
    getLogger().info(f"test result: {test_result}")
    return {
        "model": config.model_label,
        "test_result": dict(test_result),
        "best_valid_result": dict(best_valid_result or {}),
        "epochs": len(train_clock.wall),
        "best_epoch": best_epoch,
        "s_per_epoch": _mean(train_clock.wall),
        "s_per_valid": _mean(eval_clock.wall[:n_valid]),
        "s_test": eval_clock.wall[-1],
        "s_per_eval": _mean(eval_clock.wall),
        "cpu_s_per_epoch": _mean(train_clock.cpu),
        "cpu_s_per_valid": _mean(eval_clock.cpu[:n_valid]),
        "load_avg": _mean(train_clock.load + eval_clock.load),
        "wall_s": wall,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "peak_mem_mb": _peak_memory_mb(config["device"]),
        "saved_model_file": trainer.saved_model_file,
        "eval_batch_size": config["eval_batch_size"],
        "threads": torch.get_num_threads(),
        "seed": config["seed"],
    }


def _measure_in_child(model, dataset, config_file_list, config_dict):
    import recbole_diffusion  # noqa: F401  (the child is a fresh interpreter: install the hooks)

    return measure_run(model, dataset, config_file_list, config_dict)


def compare(models, dataset, config_file_list=None, config_dict=None, model_config=None, output_dir=None):
    """Run ``models`` one after another, each in a fresh process, on the same data and seed.

    ``config_dict`` applies to every model, ``model_config[name]`` (a dict) to one model only;
    the evaluation keys (``metrics``, ``topk``, ``valid_metric``) of the first model apply to all.
    Returns the rows; with ``output_dir``, writes ``comparison.md``, ``comparison.csv`` and
    ``comparison.html`` there.
    """
    from recbole_diffusion.config import Config

    first_dict = {**(config_dict or {}), **((model_config or {}).get(models[0], {}))}
    extra_keys = keys_for_other_models(models, dataset, config_file_list, config_dict or {}, model_config or {})
    first_dict["extra_config_keys"] = extra_keys[models[0]]
    first = Config(model=models[0], dataset=dataset, config_file_list=config_file_list, config_dict=first_dict)
    shared = {key: first[key] for key in SHARED_EVALUATION_KEYS}
    rows = []
    context = get_context("spawn")
    for model in models:
        overrides = {**shared, **(config_dict or {}), **((model_config or {}).get(model, {}))}
        overrides["extra_config_keys"] = extra_keys[model]
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            rows.append(pool.submit(_measure_in_child, model, dataset, config_file_list, overrides).result())
    if output_dir:
        write_report(rows, output_dir)
    return rows


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
    return {model: declared + unknown[model] for model in models}


def metric_names(rows):
    names = []
    for row in rows:
        names += [name for name in row["test_result"] if name not in names]
    return names


def table_rows(rows):
    """[header, *lines] of the comparison: test metrics, then the cost columns."""
    metrics = metric_names(rows)
    lines = [["model", *metrics, *COST_COLUMNS]]
    for row in rows:
        values = [row["test_result"].get(name, "") for name in metrics]
        costs = [row["epochs"], row["best_epoch"], f"{row['s_per_epoch']:.2f}", f"{row['s_per_eval']:.2f}", row["params"], f"{row['peak_mem_mb']:.0f}"]
        lines.append([row["model"], *values, *costs])
    return lines


def markdown_table(rows):
    header, *lines = table_rows(rows)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(value) for value in line) + " |" for line in lines]
    return "\n".join(out)


def write_report(rows, output_dir):
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "comparison.md"), "w", encoding="utf-8") as f:
        f.write(markdown_table(rows) + "\n")
    with open(os.path.join(output_dir, "comparison.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table_rows(rows))
    write_plot(rows, os.path.join(output_dir, "comparison.html"))


def write_plot(rows, path):
    """Grouped bars of every test metric per model, as a self-contained HTML page (plotly)."""
    import plotly.graph_objects as go

    metrics = metric_names(rows)
    figure = go.Figure(
        [go.Bar(name=row["model"], x=metrics, y=[row["test_result"].get(m) for m in metrics]) for row in rows]
    )
    figure.update_layout(barmode="group", title="Test metrics", yaxis_title="value")
    figure.write_html(path, include_plotlyjs=True)
