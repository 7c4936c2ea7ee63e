"""HPMN against RecBole's DIN (and, with --with-dien, DIEN) on ml-100k CTR: one markdown table.

    python benchmarks/hpmn_ctr.py                       # HPMN and DIN, histories of 50 and 200
    python benchmarks/hpmn_ctr.py --lengths 200 --models HPMN DIN DIN+feat --out /tmp/hpmn_ctr.md
    python benchmarks/hpmn_ctr.py --with-dien           # DIEN too (slow: minutes per epoch on CPU)

Every run uses the same split and protocol, RecBole's DIN setting: leave-one-out by time
(``LS valid_and_test``, ``TO``), one uniform negative per training click, 100 uniform negatives per
user for validation and test (``uni100``), selection on valid AUC with early stopping, the
best-validation checkpoint tested. All models see the same columns (``load_col`` inter: user,
item, rating, timestamp), so DIN embeds item ids only, as HPMN does; ``DIN+feat`` is DIN with
RecBole's own ml-100k defaults (user and item features loaded, item ``release_year`` embedded).
Each model trains with its own default learning rate (``DIN-80-40``: HPMN's; ``--learning-rate``
sets one for the others), the same batch size, at most ``--epochs`` epochs with early stopping
after ``--stopping-step`` epochs without a better valid AUC.

Each (model, history length) trains in its own subprocess, so that ``peak RSS`` is that run's own
(dataset, dataloaders and model together); ``s/epoch`` is training time per epoch (evaluation
excluded), ``epochs`` is how many ran (best one in brackets). Torch runs on ``--threads`` threads
(default 1: on a CPU shared with other jobs more threads are slower, not faster).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from runlog import RunLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTER_ONLY = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
# label -> (model name, config overrides)
MODELS = {
    "HPMN": ("HPMN", {}),
    # HPMN with real BatchNorm (batch statistics) before its prediction MLP instead of the authors'
    # inference-mode one (a learned affine map)
    "HPMN-batchnorm": ("HPMN", {"prediction_norm": "batch"}),
    "DIN": ("DIN", {"load_col": INTER_ONLY}),
    "DIN+feat": ("DIN", {}),
    # DIN with the attention-unit sizes of its paper (80-40, Zhou et al. 2018) instead of RecBole's
    # [256, 256, 256] (which RecBole also uses for attention): ~10x cheaper, 4 min/epoch at history
    # 200 on one core instead of ~40; same learning rate as HPMN's default.
    "DIN-80-40": ("DIN", {"load_col": INTER_ONLY, "mlp_hidden_size": [80, 40], "learning_rate": 0.003}),
    "DIEN": ("DIEN", {"load_col": INTER_ONLY}),
}


def run_one(label, length, args):
    """Train and test one model in this process; returns its row as a dict."""
    import torch

    torch.set_num_threads(args.threads)
    from recbole_diffusion.quick_start.compare import measure_run

    model_name, overrides = MODELS[label]
    config_dict = {
        "MAX_ITEM_LIST_LENGTH": length,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "eval_step": 1,
        "train_batch_size": args.batch_size,
        **({"learning_rate": args.learning_rate} if args.learning_rate is not None else {}),
        "show_progress": False,
        "seed": args.seed,
        "reproducibility": True,
        "checkpoint_dir": os.path.join(os.getcwd(), "saved"),
        **overrides,
    }
    run = measure_run(model_name, args.dataset, config_dict=config_dict)
    return {
        "model": label,
        "history": length,
        "test_auc": float(run["test_result"]["auc"]),
        "test_logloss": float(run["test_result"]["logloss"]),
        "best_valid_auc": float(run["best_valid_result"]["auc"]),
        "s_per_epoch": run["s_per_epoch"],
        "peak_rss_mb": run["peak_mem_mb"],
        "epochs": run["epochs"],
        "best_epoch": run["best_epoch"],
        "parameters": run["params"],
    }


def worker(args):
    import warnings

    warnings.filterwarnings("ignore")  # RecBole 1.2.1's pandas / torch deprecation warnings
    with tempfile.TemporaryDirectory() as scratch:  # RecBole's log/, log_tensorboard/, saved/
        os.chdir(scratch)
        row = run_one(args.worker_model, args.worker_length, args)
    print("RESULT " + json.dumps(row), flush=True)


def table(rows):
    lines = [
        "| model | history | test AUC | test LogLoss | best valid AUC | s/epoch | peak RSS (MB) | epochs (best) | params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['history']} | failed: {row['error']} | | | | | | |")
            continue
        lines.append(
            f"| {row['model']} | {row['history']} | {row['test_auc']:.4f} | {row['test_logloss']:.4f} | "
            f"{row['best_valid_auc']:.4f} | {row['s_per_epoch']:.1f} | {row['peak_rss_mb']:.0f} | "
            f"{row['epochs']} ({row['best_epoch']}) | {row['parameters']:,} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200], help="MAX_ITEM_LIST_LENGTH values")
    parser.add_argument("--models", nargs="+", default=["HPMN", "DIN"], choices=sorted(MODELS))
    parser.add_argument("--with-dien", action="store_true", help="also RecBole's DIEN (slow)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--stopping-step", type=int, default=2, help="epochs without valid AUC gain before stopping")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: each model's own (HPMN 0.003, RecBole's 0.001)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", default=None, help="also write the table here (markdown), and each run to <out>.jsonl as it finishes (reruns resume)")
    parser.add_argument("--worker-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-length", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_model:
        return worker(args)

    models = list(args.models) + (["DIEN"] if args.with_dien and "DIEN" not in args.models else [])
    # --out: every finished run is kept in <out>.jsonl at once; a rerun skips the runs found there
    # (same model, history and settings), so an interrupted benchmark resumes.
    settings = {key: getattr(args, key) for key in ("dataset", "epochs", "stopping_step", "batch_size", "learning_rate", "seed", "threads")}
    runs = RunLog(args.out, settings) if args.out else None
    rows = []
    for length in args.lengths:
        for label in models:
            previous = runs.find(model=label, history=length) if runs else None
            if previous:
                rows.append(previous)
                continue
            command = [sys.executable, os.path.abspath(__file__), "--worker-model", label, "--worker-length", str(length)]
            for key, value in settings.items():
                if value is not None:
                    command += [f"--{key.replace('_', '-')}", str(value)]
            start = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {label}, history {length} ...", file=sys.stderr, flush=True)
            # the worker's stderr (its per-epoch progress) passes through
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            found = [line[len("RESULT "):] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not found:
                row = {"model": label, "history": length, "error": f"exit status {done.returncode}, see stderr"}
            else:
                row = json.loads(found[-1])
            row["wall_s"] = time.perf_counter() - start
            if runs:
                runs.add(row)
            rows.append(row)
            print(f"    {json.dumps(row)}", file=sys.stderr, flush=True)
    output = table(rows)
    print(output)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(output + "\n")


if __name__ == "__main__":
    main()
