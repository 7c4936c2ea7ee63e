"""Benchmark: DiffRec, TDiffRec, LDiffRec, LTDiffRec and RecBole's built-in DiffRec and LDiffRec on
the DiffRec authors' ML-1M split.

    python benchmarks/diffrec_ml1m.py [--models DiffRec,TDiffRec,recbole.DiffRec] [--epochs N]
        [--data-dir benchmarks/data] [--src ../shared/data/diffrec-ml-1m-clean] [--threads 2]

Converts the split to RecBole benchmark files if needed (:mod:`recbole_diffusion.data.convert`),
then trains each model in its own fresh process (one after another: same seed, same split, and a
peak RSS of its own) with full early stopping, and prints one markdown table; the table also goes
to ``benchmarks/results/<name>.md`` and ``.csv``.

A model spec may carry config overrides after ``@``: ``TDiffRec@w_min=0.1``,
``recbole.DiffRec@eval_batch_size=4096`` (values are read as YAML).

Every model gets the authors' ML-1M setting (DiffRec/inference.py of github.com/YiyanXu/DiffRec):
T = 40 steps, linear-var schedule, noise scale 0.005 in [0.005, 0.01], x0 prediction with ELBO
reweighting, MLP dims [200, 600], timestep embedding 10, AdamW lr 1e-3, 400 users a batch; valid
Recall@20 every 5 epochs selects the checkpoint. The L-DiffRec models get the authors' L-DiffRec
ML-1M setting (their yaml; RecBole's built-in the same values in its keys) and cluster items with
the authors' item_emb.npy; RecBole's built-in LDiffRec imports ``kmeans_pytorch``:
``uv pip install -e ".[benchmarks]"``. This is a benchmark, not a test: it takes minutes.
"""

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASET = "ml-1m-diffrec"
DEFAULT_MODELS = "DiffRec,TDiffRec,recbole.DiffRec,LDiffRec,LTDiffRec,recbole.LDiffRec"
DEFAULT_SRC = REPO.parent / "shared" / "data" / "diffrec-ml-1m-clean"
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]

# Shared by every model: training, selection and evaluation protocol.
COMMON = {
    "learner": "adamw",
    "learning_rate": 0.001,
    "weight_decay": 0.0,
    "train_batch_size": 400,
    "eval_step": 5,
    "stopping_step": 3,  # RecBole stops after stopping_step + 1 = 4 evaluations (20 epochs) without gain, as the authors do
    "valid_metric": "Recall@20",
    "metrics": ["Recall", "NDCG"],
    "topk": [10, 20],
    "show_progress": False,
    "save_dataset": False,
    "save_dataloaders": False,
}
# RecBole's built-in DiffRec, in its own keys, set to what our DiffRec.yaml holds.
RECBOLE_DIFFREC = {
    "steps": 40,
    "noise_schedule": "linear-var",
    "noise_scale": 0.005,
    "noise_min": 0.005,
    "noise_max": 0.01,
    "beta_fixed": True,
    "mean_type": "x0",
    "reweight": True,
    "history_num_per_term": 10,
    "sampling_steps": 0,
    "sampling_noise": False,
    "dims_dnn": [200, 600],
    "embedding_size": 10,
    "mlp_act_func": "tanh",
    "time-aware": False,
    "norm": False,
}
# RecBole's built-in LDiffRec, in its own keys, set to what our LDiffRec.yaml holds (the authors'
# ML-1M L-DiffRec setting). It has one learning rate (the authors' autoencoder lr1 here) and reads
# item embeddings from <dataset dir>/item_emb.npy in its internal item order (written by run_one).
RECBOLE_LDIFFREC = {
    **RECBOLE_DIFFREC,
    "noise_max": 0.02,
    "beta_fixed": False,
    "dims_dnn": [300],
    "n_cate": 2,
    "in_dims": [300],
    "out_dims": [],
    "ae_act_func": "tanh",
    "reparam": True,
    "lamda": 0.03,
    "anneal_cap": 0.005,
    "anneal_steps": 500,
    "vae_anneal_cap": 0.3,
    "vae_anneal_steps": 200,
}
PRESETS = {"recbole.DiffRec": RECBOLE_DIFFREC, "recbole.LDiffRec": RECBOLE_LDIFFREC}
# Our L-DiffRec models cluster items with the authors' LightGCN embeddings (item_emb.npy of --src).
LATENT_MODELS = ("LDiffRec", "LTDiffRec")
# Measured by the lead on the official code (github.com/YiyanXu/DiffRec, DiffRec/main.py with the
# ML-1M settings of inference.py), not by this script.
ANCHOR = {
    "recall@10": 0.1007,
    "recall@20": 0.1697,
    "ndcg@10": 0.0862,
    "ndcg@20": 0.1094,
    "best_epoch": 10,
    "train_epoch_s": "~3",
    "eval_s": "~65 (valid + test)",
}
COLUMNS = [
    ("model", "model"),
    ("recall@10", "test Recall@10"),
    ("recall@20", "test Recall@20"),
    ("ndcg@10", "test NDCG@10"),
    ("ndcg@20", "test NDCG@20"),
    ("valid_recall@20", "best valid Recall@20"),
    ("epochs", "epochs trained"),
    ("best_epoch", "best epoch"),
    ("train_epoch_s", "s / train epoch"),
    ("eval_s", "s / eval pass"),
    ("test_eval_s", "s test eval (+ckpt load)"),
    ("load_avg", "host load avg"),
    ("peak_rss_mib", "peak RSS (MiB)"),
    ("params", "trainable params"),
    ("wall_s", "wall s"),
]


def parse_spec(spec):
    """``NAME@key=value@key=value`` -> (NAME, {key: value}); values are parsed as YAML."""
    import yaml

    name, *pairs = spec.split("@")
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"bad override '{pair}' in model spec '{spec}': expected key=value")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def ensure_data(data_dir, src):
    """The benchmark files under ``data_dir`` (converted from ``src`` unless all there)."""
    folder = Path(data_dir) / DATASET
    needed = [folder / f"{DATASET}.{split}.inter" for split in ("train", "valid", "test")]
    if not all(path.is_file() for path in needed):
        from recbole_diffusion.data.convert import diffrec_to_atomic

        start = time.perf_counter()
        diffrec_to_atomic(str(src), str(data_dir), DATASET)
        print(f"converted {src} -> {folder} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return folder / f"{DATASET}.yaml"


def write_internal_order_embeddings(name, config_file, config_dict, source):
    """<dataset dir>/item_emb.npy for RecBole's LDiffRec: row k is internal item k + 1.

    RecBole's built-in reads that file with no id mapping; the authors' rows are by item token.
    """
    import numpy as np
    from recbole.data import create_dataset

    from recbole_diffusion.config import Config
    from recbole_diffusion.model.general_recommender.ldiffrec import file_item_embeddings

    dataset = create_dataset(Config(model=name, config_file_list=[str(config_file)], config_dict=config_dict))
    np.save(Path(dataset.dataset_path) / "item_emb.npy", file_item_embeddings(dataset, str(source)).astype(np.float32))


# ----- one model, in its own process -------------------------------------------------------------
def run_one(spec, args):
    """Train and test one model spec; returns the measurements (called in a fresh process)."""
    import torch

    torch.set_num_threads(args.threads)
    import recbole_diffusion  # noqa: F401  (installs the plugin's hooks)

    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start.compare import measure_run

    name, overrides = parse_spec(spec)
    config_file = ensure_data(args.data_dir, args.src)
    ours = Config(model="DiffRec", config_file_list=[str(config_file)], config_dict={"data_path": str(Path(args.data_dir).resolve())})
    with tempfile.TemporaryDirectory(prefix="diffrec_ml1m_") as checkpoint_dir:
        config_dict = {
            **COMMON,
            "data_path": str(Path(args.data_dir).resolve()),
            "checkpoint_dir": checkpoint_dir,
            # RecBole's eval_batch_size counts user x item pairs in full-sort evaluation; every
            # model gets our DiffRec.yaml's value unless a spec overrides it.
            "eval_batch_size": ours["eval_batch_size"],
            "epochs": args.epochs if args.epochs is not None else ours["epochs"],
        }
        config_dict.update(PRESETS.get(name, {}))
        if name in LATENT_MODELS:
            config_dict["item_emb_path"] = str(Path(args.src) / "item_emb.npy")
        config_dict.update(overrides)
        if name == "recbole.LDiffRec":
            write_internal_order_embeddings(name, config_file, config_dict, Path(args.src) / "item_emb.npy")
        run = measure_run(name, None, [str(config_file)], config_dict)

    return {
        "model": spec,
        **{metric: float(run["test_result"][metric]) for metric in METRICS},
        "valid_recall@20": float(run["best_valid_result"].get("recall@20", float("nan"))),
        "epochs": run["epochs"],
        "best_epoch": run["best_epoch"],  # 1-based, as the authors count
        "train_epoch_s": run["s_per_epoch"],
        "eval_s": run["s_per_valid"],
        "test_eval_s": run["s_test"],
        "train_epoch_cpu_s": run["cpu_s_per_epoch"],
        "eval_cpu_s": run["cpu_s_per_valid"],
        "load_avg": run["load_avg"],
        "peak_rss_mib": run["peak_mem_mb"],
        "params": run["params"],
        "wall_s": run["wall_s"],
        "eval_batch_size": run["eval_batch_size"],
        "threads": run["threads"],
        "seed": run["seed"],
    }


# ----- the driver ----------------------------------------------------------------------------------
def fmt(value, key):
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        return value
    if key in METRICS or key == "valid_recall@20":
        return f"{value:.4f}"
    if key in ("train_epoch_s", "eval_s", "test_eval_s", "wall_s", "load_avg", "train_epoch_cpu_s", "eval_cpu_s"):
        return f"{value:.1f}"
    if key == "peak_rss_mib":
        return f"{value:.0f}"
    if key == "params":
        return f"{value:,}"
    return str(value)


def markdown(rows, args):
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | failed: {row['error']} |" + " |" * (len(COLUMNS) - 2))
        else:
            lines.append("| " + " | ".join(fmt(row.get(key), key) for key, _ in COLUMNS) + " |")
    anchor = {"model": "official DiffRec code (reference)", **ANCHOR}
    lines.append("| " + " | ".join(fmt(anchor.get(key), key) for key, _ in COLUMNS) + " |")
    done = [row for row in rows if "error" not in row]
    ebs = sorted({row["eval_batch_size"] for row in done})
    lines += [
        "",
        f"ML-1M, the DiffRec authors' clean temporal split (train 403,277 / valid 110,722 / test 57,532; "
        f"5,949 users, 2,810 items). Test metrics from the best-validation checkpoint (valid Recall@20, "
        f"every 5 epochs; stop after 20 epochs without gain). Full ranking of all items, training items "
        f"masked (and valid items at test), averaged over users with test items. Seed "
        f"{done[0]['seed'] if done else '?'}, CPU, torch threads {args.threads}, eval_batch_size "
        f"{', '.join(f'{v:,}' for v in ebs)} (user x item pairs a batch; RecBole's default is 4,096) "
        f"unless a model spec says otherwise.",
        "",
        "Timings are wall-clock means (train epochs; validation passes); 'host load avg' is the mean "
        "1-minute load average of the machine sampled after each epoch and evaluation: above the thread "
        "count, other processes shared the cores and the timings are inflated (the CSV also has CPU seconds).",
        "",
        "Reference row: measured on the official code (github.com/YiyanXu/DiffRec, DiffRec/main.py with "
        "its ML-1M settings) on one CPU core, not by this script; its timing is for one valid + test "
        "evaluation together.",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma list of model specs (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (default: the model yaml's)")
    parser.add_argument("--data-dir", default=str(HERE / "data"), help="RecBole data_path for the converted split")
    parser.add_argument("--src", default=str(DEFAULT_SRC), help="the DiffRec authors' ml-1m_clean folder (*.npy)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: %(default)s)")
    parser.add_argument("--results-dir", default=str(HERE / "results"), help="where the .md and .csv go")
    parser.add_argument("--name", default="diffrec_ml1m", help="results file stem (default: %(default)s)")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one spec, write JSON
    parser.add_argument("--result-json", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only:
        result = run_one(args.only, args)
        Path(args.result_json).write_text(json.dumps(result))
        return 0

    ensure_data(args.data_dir, args.src)
    rows = []
    # commas inside [...] belong to a list value (recbole.DiffRec@dims_dnn=[600,200,600])
    for spec in [s.strip() for s in re.split(r",(?![^\[]*\])", args.models) if s.strip()]:
        print(f"=== {spec} ===", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            command = [sys.executable, str(Path(__file__).resolve()), "--only", spec, "--result-json", str(out),
                       "--data-dir", args.data_dir, "--src", args.src, "--threads", str(args.threads)]
            if args.epochs is not None:
                command += ["--epochs", str(args.epochs)]
            code = subprocess.call(command, stdout=sys.stderr)
            rows.append(json.loads(out.read_text()) if code == 0 and out.is_file() else {"model": spec, "error": f"exit {code}"})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    table = markdown(rows, args)
    print(table)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.name}.md").write_text(table + "\n")
    keys = [key for key, _ in COLUMNS] + ["train_epoch_cpu_s", "eval_cpu_s", "eval_batch_size", "threads", "seed", "error"]
    with open(results / f"{args.name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow({"model": "official DiffRec code (reference, not measured here)", **ANCHOR})
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
