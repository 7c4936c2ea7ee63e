"""Benchmark: seconds per training batch of RecBole's LightGCN on RecBole's COO adjacency and on
the plugin's symmetric CSR one (:mod:`recbole_diffusion.graph`), the same model and batches.

    python benchmarks/lightgcn_speed.py [--config_files FILE] [--dataset NAME] [--batches 30] [--key=value ...]

Each (adjacency, settings) row is appended to ``benchmarks/results/lightgcn_speed.jsonl`` (a rerun
of the same settings reuses it, with the load average it was measured at) and the table of every
row goes to stdout with the command that measured it. One torch thread, as the other benchmarks.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from runlog import RunLog

HERE = Path(__file__).resolve().parent
ADJACENCIES = ("RecBole COO", "symmetric CSR")  # the rows a run measures, each once per settings


def seconds_per_batch(model, batches, optimizer):
    """Mean wall seconds of a training step (loss, backward, Adam) over ``batches``, after one warm-up step."""
    for index, batch in enumerate(batches):
        if index == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    return (time.perf_counter() - start) / (len(batches) - 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m-diffrec")
    parser.add_argument("--config_files", default=str(HERE / "data" / "ml-1m-diffrec" / "ml-1m-diffrec.yaml"))
    parser.add_argument("--batches", type=int, default=30, help="training steps timed per adjacency (after one warm-up step)")
    args, rest = parser.parse_known_args(argv)
    import torch

    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.config import Config
    from recbole_diffusion.config.arguments import parse_command_line
    from recbole_diffusion.graph import _RECBOLE_NORM_ADJ
    from recbole_diffusion.quick_start import build
    from recbole_diffusion.quick_start.report import read_jsonl

    torch.set_num_threads(1)
    _, overrides = parse_command_line(rest)
    settings = {"dataset": args.dataset, "config_files": args.config_files, "overrides": overrides, "batches": args.batches}
    log = RunLog(HERE / "results" / "lightgcn_speed.jsonl", settings)
    command = " ".join(["python", "benchmarks/lightgcn_speed.py", *(sys.argv[1:] if argv is None else argv)])
    missing = [label for label in ADJACENCIES if log.find(adjacency=label) is None]
    if missing:
        config = Config(model="LightGCN", dataset=args.dataset, config_file_list=[args.config_files], config_dict={"show_progress": False, **overrides})
        _, (train_data, _, _), model, _ = build(config)
        batches = [batch for batch, _ in zip(train_data, range(args.batches + 1))]
        optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
        per_batch = len(train_data)
        adjacencies = dict(zip(ADJACENCIES, (_RECBOLE_NORM_ADJ(model), model.norm_adj_matrix)))
        for label in missing:
            model.norm_adj_matrix = adjacencies[label]
            seconds = seconds_per_batch(model, batches, optimizer)
            log.add({
                "adjacency": label, "s_per_batch": seconds, "batches_per_epoch": per_batch, "epoch_s": seconds * per_batch,
                "n_layers": config["n_layers"], "train_batch_size": config["train_batch_size"], "load_avg": os.getloadavg()[0], "command": command,
            })
    print("| adjacency | layers | batch | s / batch | s / epoch (batches) | load avg | command |")
    print("|---|---|---|---|---|---|---|")
    for row in (row for row in read_jsonl(log.path) if row.get("settings") == settings):
        print(
            f"| {row['adjacency']} | {row['n_layers']} | {row['train_batch_size']} | {row['s_per_batch']:.3f} | "
            f"{row['epoch_s']:.0f} ({row['batches_per_epoch']}) | {row['load_avg']:.1f} | `{row['command']}` |"
        )


if __name__ == "__main__":
    main()
