"""Benchmark: training and evaluation cost against the number of items, on synthetic data.

    python benchmarks/scaling.py [--items 2000,10000,50000] [--users 5000] [--per-user 20]
        [--models DiffRec,LDiffRec,DreamRec,HPMN,MultiVAE,LightGCN] [--inference-steps 5] [--out benchmarks/results/scaling]

Synthetic implicit feedback: ``--users`` users with ``--per-user`` interactions each, items drawn
from a Zipf-like popularity over ``n`` items, timestamps in order (so sequential and CTR models get
histories). Each (model, n) trains one epoch and is evaluated (validation, then test) in a fresh
process (peak memory of its own), one thread. Full-ranking evaluation is chunked by RecBole's
``eval_batch_size`` (user x item pairs; the plugin's 2,000,000 for every model), so its memory stays
bounded however many items. ``--inference-steps`` applies to DiffRec and LDiffRec (default: the
paper's T). Writes ``<out>.md`` (table), ``<out>.html`` (log-log plot) and resumes from
``<out>.jsonl``. With the defaults this takes hours on a laptop CPU; ``--items 1000,4000`` minutes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from runlog import RunLog

HERE = Path(__file__).resolve().parent
GENERAL = ("DiffRec", "LDiffRec", "MultiVAE", "LightGCN")
# small HPMN: the CTR setting evaluates 100 sampled negatives per user, its cost is the history
PER_MODEL = {"HPMN": {"MAX_ITEM_LIST_LENGTH": 50}, "DreamRec": {"MAX_ITEM_LIST_LENGTH": 20, "inference_steps": 25, "sampler": "ddim"}}


def write_dataset(folder, name, n_items, users, per_user, seed=2020):
    """``folder/name/name.inter`` of synthetic interactions (unique per user, time-ordered)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    rows = []
    for user in range(users):
        items = rng.choice(n_items, size=min(per_user, n_items), replace=False, p=popularity)
        rows += [(user, item, 1.0, user * per_user + k) for k, item in enumerate(items)]
    path = Path(folder) / name
    path.mkdir(parents=True, exist_ok=True)
    with open(path / f"{name}.inter", "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)


def run_one(model, n_items, args):
    import torch

    torch.set_num_threads(1)
    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.quick_start.compare import measure_run

    name = f"synthetic-{n_items}"
    with tempfile.TemporaryDirectory() as scratch:
        write_dataset(scratch, name, n_items, args.users, args.per_user)
        os.chdir(scratch)
        config = {
            "data_path": scratch, "epochs": 1, "eval_step": 1, "show_progress": False, "checkpoint_dir": os.path.join(scratch, "saved"),
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "eval_batch_size": 2_000_000,
            **PER_MODEL.get(model, {}),
        }
        if model in ("DiffRec", "LDiffRec") and args.inference_steps:
            config["inference_steps"] = args.inference_steps
        run = measure_run(model, name, config_dict=config)
    return {"model": model, "items": n_items, "s_per_epoch": run["s_per_epoch"], "s_per_eval": run["s_per_eval"],
            "peak_mem_mb": run["peak_mem_mb"], "params": run["params"], "load_avg": run["load_avg"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="2000,10000,50000")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--models", default="DiffRec,LDiffRec,DreamRec,HPMN,MultiVAE,LightGCN")
    parser.add_argument("--inference-steps", type=int, default=None)
    parser.add_argument("--out", default=str(HERE / "results" / "scaling"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, n_items = args.worker.split(":")
        print("RESULT " + json.dumps(run_one(model, int(n_items), args)), flush=True)
        return

    log = RunLog(args.out, {"users": args.users, "per_user": args.per_user, "inference_steps": args.inference_steps})
    rows = []
    for n_items in [int(n) for n in args.items.split(",")]:
        for model in args.models.split(","):
            row = log.find(model=model, items=n_items)
            if row is None:
                print(f"=== {model}, {n_items} items", file=sys.stderr, flush=True)
                command = [sys.executable, __file__, "--worker", f"{model}:{n_items}", *sys.argv[1:]]
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if not lines:
                    error = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
                    row = {"model": model, "items": n_items, "error": error}
                else:
                    row = log.add(json.loads(lines[-1][len("RESULT "):]))
            rows.append(row)

    table = ["| model | items | s / epoch | s / eval pass | peak memory (MB) | params | load avg |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "error" in row:
            table.append(f"| {row['model']} | {row['items']:,} | failed: {row['error']} | | | | |")
        else:
            table.append(f"| {row['model']} | {row['items']:,} | {row['s_per_epoch']:.2f} | {row['s_per_eval']:.2f} | "
                         f"{row['peak_mem_mb']:,.0f} | {row['params']:,} | {row['load_avg']:.1f} |")
    text = "\n".join(table)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.md").write_text(text + "\n", encoding="utf-8")
    plot(rows, f"{args.out}.html")


def plot(rows, path):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=3, subplot_titles=["s / epoch", "s / eval pass", "peak memory (MB)"])
    for model in dict.fromkeys(row["model"] for row in rows):
        done = [row for row in rows if row["model"] == model and "error" not in row]
        for col, key in enumerate(("s_per_epoch", "s_per_eval", "peak_mem_mb"), start=1):
            figure.add_trace(go.Scatter(x=[r["items"] for r in done], y=[r[key] for r in done], name=model, legendgroup=model,
                                        showlegend=col == 1, mode="lines+markers"), row=1, col=col)
    figure.update_xaxes(type="log", title="items")
    figure.update_yaxes(type="log")
    figure.update_layout(title="Cost against the number of items (synthetic data, one thread)", template="plotly_white", width=1300, height=480)
    figure.write_html(path, include_plotlyjs=True)


if __name__ == "__main__":
    main()
