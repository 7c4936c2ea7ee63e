"""A comparison's test metrics on DiffRec's ML-1M clean split beside the DiffRec paper's figures.

    python benchmarks/paper_table.py benchmarks/results/comparison-ml1m-tuned

Reads the comparison's summary.csv and runs.csv (written by ``--compare``) and prints one markdown
table: mean ± std over seeds of test Recall and NDCG @10/@20 (▲ / ▼ against the comparison's
reference by Holm-adjusted Wilcoxon), the relative difference of Recall@20 to the reference with
its bootstrap interval, the mean epochs to the best validation, and the paper's test Recall@20 of
the same model with the measured difference to it.
"""

import argparse
import csv
import os
import statistics

# Wang et al., "Diffusion Recommender Model", SIGIR 2023: Table 2 (Table 6 for L-DiffRec), test
# Recall@20 on ML-1M clean, with the paper's name of the model (MF: BPR-trained matrix factorisation).
PAPER_RECALL20 = {
    "BPR": ("MF", 0.1503), "LightGCN": ("LightGCN", 0.1707), "MultiVAE": ("MultVAE", 0.1726),
    "DiffRec": ("DiffRec", 0.1787), "LDiffRec": ("L-DiffRec", 0.1809),
}
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
MARKS = {"better": " ▲", "worse": " ▼"}


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def table(folder):
    summary = {(row["model"], row["metric"]): row for row in read_csv(os.path.join(folder, "summary.csv"))}
    runs = [row for row in read_csv(os.path.join(folder, "runs.csv")) if row["status"] == "finished"]
    models = list(dict.fromkeys(model for model, _ in summary))
    header = ["model", *METRICS, "Recall@20 vs reference (95 % CI)", "epochs to best valid", "paper Recall@20", "vs paper"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for model in models:
        cells = []
        for metric in METRICS:
            row = summary[model, metric]
            spread = f" ± {float(row['std']):.4f}" if int(row["seeds"]) > 1 else ""
            cells.append(f"{float(row['mean']):.4f}{spread}{MARKS.get(row['direction'], '')}")
        recall = summary[model, "recall@20"]
        if recall["direction"] == "reference":
            cells.append("reference")
        else:
            low, relative, high = (float(recall[key]) for key in ("relative_low", "relative", "relative_high"))
            cells.append(f"{relative:+.1%} [{low:+.1%}, {high:+.1%}]")
        best = [float(run["best_epoch"]) for run in runs if run["model"] == model and run["best_epoch"]]
        cells.append(f"{statistics.mean(best):.0f}" if best else "")
        name, figure = PAPER_RECALL20.get(model, (None, None))
        measured = float(recall["mean"])
        cells += [f"{figure:.4f} ({name})", f"{measured / figure - 1:+.1%}"] if figure else ["", ""]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a --compare output folder (summary.csv, runs.csv)")
    print(table(parser.parse_args().folder))


if __name__ == "__main__":
    main()
