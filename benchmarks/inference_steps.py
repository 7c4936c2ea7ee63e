"""Benchmark: few-step inference of the DiffRec family on the DiffRec authors' ML-1M split.

    python benchmarks/inference_steps.py [--models DiffRec,LDiffRec] [--steps 40,10,5,2,1] [--threads 1]

Trains each model once (the protocol of ``diffrec_ml1m.py``: the authors' ML-1M setting, valid
Recall@20 every 5 epochs selects the checkpoint), then tests the *same* checkpoint with every
``inference_steps`` K (K = T is the paper's reverse chain; fewer is a strided DDIM, K denoiser
calls), timing each test pass. RecBole's built-in DiffRec with the same network
(``dims_dnn: [600, 200, 600]``, 40 steps) is trained and tested beside it for its test pass time.
Finished runs are kept in ``benchmarks/results/inference_steps.jsonl`` (a rerun resumes); the
table goes to stdout and ``benchmarks/results/inference_steps.md``. It takes ~30 minutes on one core.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from diffrec_ml1m import COMMON, DATASET, DEFAULT_SRC, LATENT_MODELS, METRICS, PRESETS, ensure_data
from runlog import RunLog

HERE = Path(__file__).resolve().parent
BASELINE = "recbole.DiffRec"
SAME_NETWORK = {"dims_dnn": [600, 200, 600]}  # RecBole's [200, 600] builds n -> 200 -> 600 -> n


def train(name, args, checkpoint_dir):
    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start.compare import measure_run

    config_file = ensure_data(args.data_dir, args.src)
    ours = Config(model="DiffRec", config_file_list=[str(config_file)], config_dict={"data_path": str(Path(args.data_dir).resolve())})
    config_dict = {
        **COMMON,
        "data_path": str(Path(args.data_dir).resolve()),
        "checkpoint_dir": checkpoint_dir,
        "eval_batch_size": ours["eval_batch_size"],
        **({"epochs": args.epochs} if args.epochs else {}),
        **PRESETS.get(name, {}),
        **(SAME_NETWORK if name == BASELINE else {}),
        **({"item_emb_path": str(Path(args.src) / "item_emb.npy")} if name in LATENT_MODELS else {}),
    }
    return measure_run(name, None, [str(config_file)], config_dict)


def test_passes(checkpoint, steps):
    """(K, metrics, seconds) of one test pass per K, on the checkpoint's model."""
    from recbole_diffusion.quick_start import build, load_data_and_model

    config, model, _, _, _, test_data = load_data_and_model(checkpoint)
    _, _, _, trainer = build(config)
    trainer.model.load_state_dict(model.state_dict())
    rows = []
    for k in sorted({min(k, config["steps"]) for k in steps}, reverse=True):  # K = T first
        trainer.model.inference_steps = k if k < config["steps"] else None
        start = time.perf_counter()
        result = trainer.evaluate(test_data, load_best_model=False)
        rows.append({"k": k, "seconds": time.perf_counter() - start, "load_avg": os.getloadavg()[0],
                     **{m: float(result[m]) for m in METRICS}})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="DiffRec,LDiffRec", help="the plugin's models to test (default: %(default)s)")
    parser.add_argument("--steps", default="40,10,5,2,1", help="inference_steps values K (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (default: the model yaml's)")
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    parser.add_argument("--src", default=str(DEFAULT_SRC))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "inference_steps.md"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import recbole_diffusion  # noqa: F401

    steps = [int(k) for k in args.steps.split(",")]
    log = RunLog(args.out, {"epochs": args.epochs, "threads": args.threads, "dataset": DATASET})
    keep = HERE / "results" / "inference_steps_checkpoints"
    keep.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in [BASELINE, *args.models.split(",")]:
        row = log.find(model=name)
        if row is None:
            print(f"=== training {name}", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(dir=keep) as scratch:
                run = train(name, args, scratch)
                checkpoint = keep / f"{name}.pth"
                os.replace(run["saved_model_file"], checkpoint)
            row = {"model": name, "epochs": run["epochs"], "best_epoch": run["best_epoch"], "s_test": run["s_test"],
                   "load_avg_train": run["load_avg"], "test": {m: float(run["test_result"][m]) for m in METRICS},
                   "passes": [] if name == BASELINE else test_passes(str(checkpoint), steps)}
            log.add(row)
        rows.append(row)

    baseline = rows[0]
    lines = [
        "| model | K (denoiser calls) | test Recall@10 | test Recall@20 | test NDCG@10 | test NDCG@20 | Recall@20 vs K = T | s / test pass | x faster than RecBole's DiffRec | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| RecBole's DiffRec (same network) | 40 | " + " | ".join(f"{baseline['test'][m]:.4f}" for m in METRICS)
        + f" | | {baseline['s_test']:.1f} | 1.0 | {baseline['load_avg_train']:.1f} |",
    ]
    for row in rows[1:]:
        full = row["passes"][0]["recall@20"]
        for p in row["passes"]:
            lines.append(
                f"| {row['model']} | {p['k']} | " + " | ".join(f"{p[m]:.4f}" for m in METRICS)
                + f" | {100 * (p['recall@20'] / full - 1):+.1f} % | {p['seconds']:.1f} | {baseline['s_test'] / p['seconds']:.1f} | {p['load_avg']:.1f} |"
            )
    table = "\n".join(lines)
    print(table)
    Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
