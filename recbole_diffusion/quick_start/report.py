"""Statistics and the written report of a comparison over seeds.

- :func:`per_user_values`: each test user's value of every top-k metric (and of AUC / LogLoss over
  the user's own rows), from RecBole's own evaluation data (the same numbers RecBole averages).
- :func:`paired_test`: Wilcoxon signed-rank test between two models over the users both were
  tested on (each user's value averaged over the seeds first).
- :func:`summarise`: mean ± std over seeds per model and metric, the p-value and direction against
  the reference model; :func:`write_report` writes it as markdown, CSV and one HTML page.
"""

import csv
import html
import inspect
import json
import math
import os
import warnings

import numpy as np
from recbole.evaluator.base_metric import LossMetric, TopkMetric
from recbole.evaluator.register import smaller_metrics

from recbole_diffusion.utils.checks import ConfigError

COSTS = [("s_per_epoch", "s / epoch"), ("s_per_eval", "s / eval"), ("params", "parameters"), ("peak_mem_mb", "peak memory (MB)")]
COST_LABELS = {"s_per_epoch": "%{y:.2f}", "s_per_eval": "%{y:.2f}", "params": "%{y:.3s}", "peak_mem_mb": "%{y:,.0f}"}
SIGNIFICANCE = 0.05
BOOTSTRAP_SAMPLES = 2000


def per_user_values(evaluator, struct, users):
    """{'recall@20': {user id: value}, ...} for every top-k metric of RecBole's ``evaluator``, and,
    for labelled rows (CTR), {'auc': ..., 'logloss': ...}: each user's own value over their rows
    (AUC of users with both labels only), by RecBole's own metric code."""
    if "rec.topk" in struct and len(users) == len(struct.get("rec.topk")):
        return _top_k_per_user(evaluator, struct, users)
    if "rec.score" in struct and "data.label" in struct and len(users) == len(struct.get("rec.score")):
        return _labelled_per_user(evaluator, struct, users)
    return {}


def _top_k_per_user(evaluator, struct, users):
    out = {}
    for name, metric in evaluator.metric_class.items():
        if not isinstance(metric, TopkMetric):
            continue
        pos_index, pos_len = metric.used_info(struct)
        takes_len = len(inspect.signature(metric.metric_info).parameters) == 2
        matrix = metric.metric_info(pos_index, pos_len) if takes_len else metric.metric_info(pos_index)
        for k in metric.topk:
            out[f"{name}@{k}"] = dict(zip(map(str, users), matrix[:, k - 1].tolist()))  # str: as a JSON log keeps them
    return out


def _labelled_per_user(evaluator, struct, users):
    ids, rows = np.unique(np.asarray(users), return_inverse=True)
    groups = np.split(np.argsort(rows, kind="stable"), np.cumsum(np.bincount(rows))[:-1])
    out = {}
    for name, metric in evaluator.metric_class.items():
        if not isinstance(metric, LossMetric):
            continue
        preds, trues = metric.used_info(struct)
        out[name] = {
            str(user): float(metric.metric_info(preds[rows_of_user], trues[rows_of_user]))
            for user, rows_of_user in zip(ids.tolist(), groups)
            if name != "auc" or 0 < trues[rows_of_user].sum() < len(rows_of_user)
        }
    return out


def mean_over_seeds(runs, metric):
    """{user: the user's value of ``metric`` averaged over the runs (seeds) that tested them}."""
    sums, counts = {}, {}
    for run in runs:
        for user, value in (run.get("per_user") or {}).get(metric, {}).items():
            sums[user] = sums.get(user, 0.0) + value
            counts[user] = counts.get(user, 0) + 1
    return {user: sums[user] / counts[user] for user in sums}


def paired_test(reference, other):
    """(p-value, mean of other - reference, users) of a two-sided Wilcoxon signed-rank test over the
    users both dicts have; p = 1 when every difference is zero, NaN without common users."""
    from scipy.stats import wilcoxon

    users = sorted(set(reference) & set(other))
    if not users:
        return math.nan, math.nan, 0
    diff = np.array([other[u] - reference[u] for u in users])
    if not diff.any():
        return 1.0, 0.0, len(users)
    return float(wilcoxon(diff).pvalue), float(diff.mean()), len(users)


def holm(p_values):
    """Holm's step-down adjustment of p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="mergesort")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def bootstrap_relative_difference(reference, other, samples=BOOTSTRAP_SAMPLES, seed=0):
    """(relative difference of the means, 2.5 % and 97.5 % quantiles) of ``other`` against
    ``reference`` over their common users, by a paired bootstrap: users resampled with replacement,
    each keeping both values. NaN where there are no common users or the reference mean is 0."""
    users = sorted(set(reference) & set(other))
    ref = np.array([reference[u] for u in users])
    oth = np.array([other[u] for u in users])
    if not users or ref.mean() == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ratios = []
    for start in range(0, samples, 100):  # 100 resamples at a time: memory stays at 100 x users
        index = rng.integers(0, len(users), size=(min(100, samples - start), len(users)))
        ref_means = ref[index].mean(axis=1)
        ratios.append(np.divide(oth[index].mean(axis=1) - ref_means, ref_means, out=np.full(len(index), math.nan), where=ref_means != 0))
    ratios = np.concatenate(ratios)
    low, high = np.nanquantile(ratios, [0.025, 0.975])
    return float(oth.mean() / ref.mean() - 1), float(low), float(high)


def summarise(runs, reference, metrics):
    """Rows of finished runs, models in order: model, metric, mean, std, seeds; against the
    reference the Wilcoxon p-value, its Holm adjustment over every test of the table (``p_holm``,
    which decides the direction), the mean per-user difference and the relative difference of the
    means with its 95 % paired bootstrap interval over users."""
    models = list(dict.fromkeys(run["model"] for run in runs))
    finished = {model: [run for run in runs if run["model"] == model and "error" not in run] for model in models}
    rows = []
    for model in models:
        for metric in metrics:
            values = [run["test_result"][metric] for run in finished[model] if metric in run["test_result"]]
            row = {"model": model, "metric": metric, "mean": mean(values), "std": _std(values), "seeds": len(values)}
            row.update(p_value=math.nan, difference=math.nan, users=0, relative=math.nan, relative_low=math.nan, relative_high=math.nan)
            if model != reference and finished.get(reference):
                ref_users, model_users = mean_over_seeds(finished[reference], metric), mean_over_seeds(finished[model], metric)
                row["p_value"], row["difference"], row["users"] = paired_test(ref_users, model_users)
                row["relative"], row["relative_low"], row["relative_high"] = bootstrap_relative_difference(ref_users, model_users)
            rows.append(row)
    for row, adjusted in zip(rows, holm([row["p_value"] for row in rows])):
        row["p_holm"] = adjusted
        row["direction"] = _direction(adjusted, row["difference"], row["metric"]) if row["model"] != reference else "reference"
    return rows


def best_validation(epochs_and_scores, bigger=True):
    """``(epoch, score)`` of the best validation, the last one of a tie: the checkpoint RecBole's
    early stopping keeps (it resets on a score equal to the best); ``(None, nan)`` for none."""
    best = (None, math.nan)
    for epoch, score in epochs_and_scores:
        if math.isnan(best[1]) or (score >= best[1] if bigger else score <= best[1]):
            best = (epoch, float(score))
    return best


def best_of_run(valid_scores, bigger=True):
    """:func:`best_validation` of a run's ``(epoch, score)`` validations as RecBole's trainer
    numbers its epochs (from 0); the epoch returned counts from 1."""
    return best_validation(((epoch + 1, score) for epoch, score in valid_scores), bigger)


def mean(values):
    """The mean, NaN for no values."""
    return float(np.mean(values)) if values else math.nan


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else math.nan)


def _direction(p_value, difference, metric):
    if math.isnan(p_value):
        return "n/a"
    if p_value >= SIGNIFICANCE or difference == 0:
        return "no significant difference"
    smaller_is_better = metric.split("@")[0] in smaller_metrics  # LogLoss, RMSE, MAE
    return "better" if (difference < 0) == smaller_is_better else "worse"


def cost_summary(runs):
    """{model: {cost: mean over finished seeds}}."""
    out = {}
    for run in runs:
        if "error" not in run:
            out.setdefault(run["model"], []).append(run)
    return {model: {key: mean([r[key] for r in group]) for key, _ in COSTS} for model, group in out.items()}


def _mark(row):
    return {"better": " ▲", "worse": " ▼"}.get(row["direction"], "")


def convergence_rows(runs, searches=None):
    """Per model: mean epochs to the best validation and epochs trained over its finished seeds,
    whether a seed's best validation was its last epoch (stopped by the cap, still improving) or
    its first one after more than one epoch (it may have peaked before it: validate more often),
    the wall seconds of its seeds and of its search."""
    rows = {}
    for run in runs:
        if "error" in run:
            continue
        row = rows.setdefault(run["model"], {"best_epoch": [], "epochs": [], "at_cap": False, "at_first": False, "seeds_s": 0.0})
        if run.get("best_epoch") is not None:
            row["best_epoch"].append(run["best_epoch"])
            row["at_cap"] |= run["best_epoch"] == run["epochs"] and run["epochs"] > 1
            row["at_first"] |= run["best_epoch"] == run.get("first_valid_epoch") and run["best_epoch"] > 1
        row["epochs"].append(run["epochs"])
        row["seeds_s"] += run.get("wall_s") or 0.0
    for model, row in rows.items():
        row["best_epoch"], row["epochs"] = mean(row["best_epoch"]), mean(row["epochs"])
        row["search_s"] = (searches or {}).get(model)
    return rows


def markdown(title, summary, runs, reference, metrics, settings=None, searches=None):
    models = list(dict.fromkeys(run["model"] for run in runs))
    cell = {(row["model"], row["metric"]): row for row in summary}
    tests = sum(1 for row in summary if not math.isnan(row["p_value"]))
    labelled = [m for m in metrics if "@" not in m and any(not math.isnan(cell[model, m]["p_value"]) for model in models)]
    if tests:
        significance = (f"▲ / ▼: better / worse than {reference} (two-sided Wilcoxon signed-rank over test users, "
                        f"Holm-adjusted over the table's {tests} tests, p < {SIGNIFICANCE})")
        if labelled:  # AUC, LogLoss: the table has RecBole's value over all rows
            significance += f"; {', '.join(labelled)} are tested and compared over each user's own value (of the user's rows)"
    else:  # one model, or metrics without per-user values (AUC, LogLoss)
        significance = f"no paired test ({'one model' if len(models) == 1 else 'no per-user values of these metrics'})"
    lines = [f"# {title}", "", f"Mean ± std over seeds (std from 2 seeds on) of the test metrics; {significance}.", ""]
    lines += ["| model | " + " | ".join(metrics) + " | seeds |", "|---|" + "---|" * (len(metrics) + 1)]
    for model in models:
        values = [_mean_std(cell[model, m]) + _mark(cell[model, m]) for m in metrics]
        lines.append(f"| {model} | " + " | ".join(values) + f" | {cell[model, metrics[0]]['seeds']} |")
    if tests:
        lines += ["", f"Holm-adjusted p-values against {reference} (raw ones in summary.csv):", "",
                  "| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for model in models:
            if model != reference:
                lines.append(f"| {model} | " + " | ".join("" if math.isnan(cell[model, m]["p_holm"]) else f"{cell[model, m]['p_holm']:.3g}" for m in metrics) + " |")
        lines += ["", f"Relative difference to {reference} of the mean over users, with its 95 % paired bootstrap interval "
                  f"({BOOTSTRAP_SAMPLES} resamples of the test users):", "",
                  "| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for model in models:
            if model != reference:
                lines.append(f"| {model} | " + " | ".join(_relative(cell[model, m]) for m in metrics) + " |")
    costs = cost_summary(runs)
    lines += ["", "| model | " + " | ".join(label for _, label in COSTS) + " |", "|---|" + "---|" * len(COSTS)]
    for model, values in costs.items():
        lines.append(f"| {model} | " + " | ".join(_number(values[key], integer=key == "params") for key, _ in COSTS) + " |")
    lines += ["", "Convergence (mean over seeds) and wall time; ⚠: a seed's best validation was its last epoch (cut by the epoch cap, "
              "still improving); ◁: its first validation, after more than one epoch (it may have peaked before: validate more often, "
              "--eval_step):", "",
              "| model | epochs to best valid | epochs trained | seeds (s) | search (s) |", "|---|---|---|---|---|"]
    for model, row in convergence_rows(runs, searches).items():
        lines.append(
            f"| {model} | {_number(row['best_epoch'])}{' ⚠' if row['at_cap'] else ''}{' ◁' if row['at_first'] else ''} | {_number(row['epochs'])} | "
            f"{_number(row['seeds_s'], integer=True)} | {_number(row['search_s'], integer=True) if row['search_s'] is not None else ''} |"
        )
    if settings:
        lines += ["", "Settings given to each model (tuned on validation, or set per model):", ""]
        lines += [f"- {model}: {text}" for model, text in settings.items()]
    crashed = [run for run in runs if "error" in run]
    if crashed:
        lines += ["", "Crashed runs (not in the means):", ""]
        lines += [f"- {run['model']}, seed {run['seed']}: {run['error']}" for run in crashed]
    return "\n".join(lines) + "\n"


def _mean_std(row):
    """'0.1234 ± 0.0012'; the mean alone from one seed (a standard deviation needs two)."""
    if math.isnan(row["mean"]):
        return ""
    return f"{row['mean']:.4f}" + (f" ± {row['std']:.4f}" if row["seeds"] > 1 else "")


def _relative(row):
    if math.isnan(row["relative"]):
        return ""
    return f"{row['relative']:+.1%} [{row['relative_low']:+.1%}, {row['relative_high']:+.1%}]"


def write_report(output_dir, title, runs, reference, metrics, settings=None, searches=None):
    """``comparison.md``, ``summary.csv`` (model x metric), ``runs.csv`` (model x seed) and
    ``comparison.html``; returns the summary rows. ``settings``: {model: its own settings, as text};
    ``searches``: {model: wall seconds of its search}."""
    os.makedirs(output_dir, exist_ok=True)
    summary = summarise(runs, reference, metrics)
    with open(os.path.join(output_dir, "comparison.md"), "w", encoding="utf-8") as f:
        f.write(markdown(title, summary, runs, reference, metrics, settings, searches))
    with open(os.path.join(output_dir, "summary.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]) + ["reference"])
        writer.writeheader()
        writer.writerows({**row, "reference": reference} for row in summary)
    run_fields = [
        "model", "seed", "status", *metrics, "epochs", "best_epoch", "first_valid_epoch", "wall_s", *(key for key, _ in COSTS), "load_avg", "resumed", "error",
    ]
    with open(os.path.join(output_dir, "runs.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=run_fields, extrasaction="ignore")
        writer.writeheader()
        for run in runs:
            writer.writerow({**run, **run.get("test_result", {}), "status": "crashed" if "error" in run else "finished"})
    write_html(os.path.join(output_dir, "comparison.html"), title, summary, runs, reference, metrics)
    return summary


def model_colors(models):
    """{model: its bar colour}: ten muted colours, then plotly's 24 dark ones, so that a 13-model
    table (the ML-1M one) gives no two models the same colour; only past 34 models do colours repeat."""
    from plotly.colors import qualitative

    palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]
    palette += qualitative.Dark24
    return {model: palette[i % len(palette)] for i, model in enumerate(models)}


def write_html(path, title, summary, runs, reference, metrics):
    """One self-contained page: metric bars with std error bars and significance marks, a cost panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    models = list(dict.fromkeys(run["model"] for run in runs))
    cell = {(row["model"], row["metric"]): row for row in summary}
    costs = cost_summary(runs)
    figure = make_subplots(
        rows=2, cols=len(COSTS), specs=[[{"colspan": len(COSTS)}] + [None] * (len(COSTS) - 1), [{}] * len(COSTS)],
        subplot_titles=[f"test metrics (mean ± std over seeds; ▲/▼ vs {reference}, Holm-adjusted p < {SIGNIFICANCE})", *(label for _, label in COSTS)],
        row_heights=[0.62, 0.38], vertical_spacing=0.14,
    )
    colors = model_colors(models)
    for model in models:
        color = colors[model]
        rows = [cell[model, m] for m in metrics]
        figure.add_trace(
            go.Bar(
                name=model, x=metrics, y=[r["mean"] for r in rows], marker_color=color, legendgroup=model, offsetgroup=model,
                error_y={"type": "data", "array": [r["std"] for r in rows], "visible": True},
                hovertext=[
                    f"{model} {r['metric']}: {_mean_std(r)}" + ("" if math.isnan(r["p_holm"]) else f", Holm p = {r['p_holm']:.3g}") for r in rows
                ],
            ),
            row=1, col=1,
        )
        figure.add_trace(  # the marks, on an empty bar at the top of the error bar, so that neither hides the other
            go.Bar(
                x=metrics, y=[0] * len(rows), base=[r["mean"] + r["std"] for r in rows], offsetgroup=model,
                text=[_mark(r).strip() for r in rows], textposition="outside", cliponaxis=False,
                marker_color=color, showlegend=False, legendgroup=model, hoverinfo="skip",
            ),
            row=1, col=1,
        )
        for j, (key, _) in enumerate(COSTS):
            value = costs.get(model, {}).get(key)
            figure.add_trace(
                go.Bar(
                    name=model, x=[model], y=[value], marker_color=color, legendgroup=model, showlegend=False,
                    texttemplate=COST_LABELS[key], textposition="outside", textangle=0, cliponaxis=False,
                ),
                row=2, col=j + 1,
            )
    figure.update_layout(
        title={"text": _two_lines(html.escape(title)), "x": 0.5}, barmode="group", height=840, width=1200,
        template="plotly_white", legend={"orientation": "h", "y": 1.08, "x": 0.5, "xanchor": "center"},
        margin={"t": 140},
    )
    figure.update_xaxes(showticklabels=False, row=2)
    figure.write_html(path, include_plotlyjs=True, config={"displaylogo": False})


def _two_lines(title):
    """'A vs B on data: details' as a headline and a smaller second line, so that it fits."""
    head, _, details = title.partition(": ")
    return f"{head}<br><sup>{details}</sup>" if details else head


def _number(value, integer=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:,.0f}" if integer or value >= 1000 else f"{value:,.2f}"


def read_jsonl(path):
    """The rows of a JSONL run log (a comparison's runs.jsonl, a benchmark's); none if it does not exist yet.

    A torn last line (a crash or a full disk while it was appended) is left out with a warning: that
    run is simply run again. Any other line that is not JSON fails, naming the file and the line.
    """
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: an append that did not finish
                warnings.warn(f"{path}, line {number}: an incomplete last row (not JSON); it is ignored and its run is done again")
                continue
            raise ConfigError(f"{path}, line {number}: not a JSON row ({error.msg}); fix or remove that line") from None
    return rows


def append_jsonl(path, row):
    """Append one row to a JSONL log in one write. A torn last row (see :func:`read_jsonl`) is cut
    off first, so that it never ends up in the middle of the log."""
    with open(path, "a+b") as f:
        f.seek(0)
        content = f.read()
        if content and not content.endswith(b"\n"):
            f.truncate(content.rfind(b"\n") + 1)
        f.write((json.dumps(row, default=str) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
