"""Benchmark (not a test): how much of a DreamRec Zhihu number is checkpoint selection.

    python benchmarks/dreamrec_selection.py [--epochs 160] [--seeds 2020] [--sampler ddim:25]
    python benchmarks/dreamrec_selection.py --official-log official.log   # also read the authors' run

Trains DreamRec (the yaml's Zhihu defaults) on the converted Zhihu split and tests *every* epoch,
beside RecBole's validation, with a fast sampler (DDIM with 25 calls tests within 1 % of the
paper's 500-step DDPM on this split, see dreamrec_zhihu.py). From each run's curve it prints test
HR@20 / NDCG@20 under each selection protocol:

- chosen by valid HR@20 at every 10th epoch (the cadence of the authors' code and of
  ``dreamrec_zhihu.py``), and at every epoch;
- the best *test* evaluation picked by hand, as the authors' logs are read, again at every 10th
  epoch and at every epoch;
- the mean test value over the second half of training.

``--official-log`` reads the output of the authors' ``DreamRec.py`` (validation and test printed every
10 epochs) and puts the same protocols beside it. The curve of every run is kept in
``benchmarks/results/dreamrec_selection_seed<seed>_<sampler>.jsonl`` and reused by a rerun, so seeds can
run in parallel invocations and a last one prints them all.
"""

import argparse
import json
import os
import re
import statistics

from runlog import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.path.join(REPO, "benchmarks", "data"))
    parser.add_argument("--src", default=os.path.join(REPO, "..", "shared", "data", "dreamrec-zhihu"))
    parser.add_argument("--epochs", type=int, default=160, help="the authors' run length for the anchor")
    parser.add_argument("--seeds", default="2020", help="comma-separated seeds, one run each")
    parser.add_argument("--sampler", default="ddim:25", help="sampler for the per-epoch evaluations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official-log", help="stdout of the authors' DreamRec.py, to compare on the same protocols")
    parser.add_argument("--results", default=os.path.join(REPO, "benchmarks", "results"))
    return parser.parse_args()


def train_curve(config_file, seed, epochs, sampler, path):
    """Train one DreamRec run; after each epoch RecBole validates and the callback tests. Returns the curve."""
    import torch

    from recbole_diffusion.config import Config
    from recbole_diffusion.quick_start.quick_start import build

    name, _, steps = sampler.partition(":")
    config_dict = {
        "seed": seed,
        "epochs": epochs,
        "eval_step": 1,
        "stopping_step": epochs,  # the whole curve: no early stopping
        "sampler": name,
        "metrics": ["Hit", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "Hit@20",
        "show_progress": False,
    }
    if steps:
        config_dict["inference_steps"] = int(steps)
    config = Config(model="DreamRec", dataset="zhihu-dreamrec", config_file_list=[config_file], config_dict=config_dict)
    _, (train_data, valid_data, test_data), model, trainer = build(config)
    curve = []

    def test_every_epoch(epoch, valid_score):
        with torch.random.fork_rng():  # testing must not shift the training's random stream
            torch.manual_seed(seed)
            test = trainer.evaluate(test_data, load_best_model=False)
        curve.append({"epoch": epoch + 1, "valid_hit@20": valid_score, "test": dict(test)})
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(curve[-1]) + "\n")

    open(path, "w").close()
    trainer.fit(train_data, valid_data, saved=False, show_progress=False, callback_fn=test_every_epoch)
    return curve


def read_official_log(path):
    """(epoch, valid HR@20, test HR@20, test NDCG@20) at each evaluation printed by the authors' DreamRec.py."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    numbers = r"\s+".join([r"([0-9.]+)"] * 6)
    blocks = re.findall(r"Epoch (\d+);(?:(?!Epoch).)*?VAL PHRASE.*?\n.*?\n" + numbers + r".*?TEST PHRASE.*?\n.*?\n" + numbers, text, re.S)
    return [
        {"epoch": int(b[0]) + 1, "valid_hit@20": float(b[3]), "test": {"hit@20": float(b[9]), "ndcg@20": float(b[10])}}
        for b in blocks
    ]


def protocols(curve):
    """Test (HR@20, NDCG@20) under each selection protocol; ties go to the earlier evaluation."""

    def at(entry):
        return entry["test"]["hit@20"], entry["test"]["ndcg@20"]

    def by_valid(entries):
        return at(max(entries, key=lambda e: (e["valid_hit@20"], -e["epoch"]))) if entries else None

    def by_test(entries):
        return at(max(entries, key=lambda e: (e["test"]["hit@20"], -e["epoch"]))) if entries else None

    tenth = [e for e in curve if e["epoch"] % 10 == 0]
    second_half = curve[len(curve) // 2:]
    return {
        "valid, every 10th epoch": by_valid(tenth),
        "valid, every epoch": by_valid(curve),
        "best test by hand, every 10th epoch": by_test(tenth),
        "best test by hand, every epoch": by_test(curve),
        "mean test, 2nd half": tuple(statistics.mean(at(e)[i] for e in second_half) for i in range(2)),
    }


def main():
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.data.convert import dreamrec_to_atomic

    config_file = os.path.join(args.data_dir, "zhihu-dreamrec", "zhihu-dreamrec.yaml")
    if not os.path.isfile(config_file):
        config_file = dreamrec_to_atomic(args.src, args.data_dir, trust_pickle=True)  # the files published with the paper
    os.makedirs(args.results, exist_ok=True)
    runs = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        path = os.path.join(args.results, f"dreamrec_selection_seed{seed}_{args.sampler.replace(':', '')}.jsonl")
        curve = read_jsonl(path)
        if len(curve) != args.epochs:  # a finished curve of the same length is reused, not trained again
            curve = train_curve(config_file, seed, args.epochs, args.sampler, path)
        runs[f"DreamRec (plugin), seed {seed}, {args.sampler}"] = curve
    if args.official_log:
        runs["official DreamRec.py, ddpm (500)"] = read_official_log(args.official_log)

    names = list(protocols(next(iter(runs.values()))))
    lines = ["| run | evaluations | " + " | ".join(f"{n}: HR@20 / NDCG@20" for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    for run, curve in runs.items():
        cells = [f"{v[0]:.4f} / {v[1]:.4f}" if v else "–" for v in protocols(curve).values()]
        lines.append(f"| {run} | {len(curve)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.results, "dreamrec_selection.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
