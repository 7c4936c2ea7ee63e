"""Benchmark: users per second of ``--recommend`` (top-10 of every user) from a checkpoint.

    python benchmarks/recommend_speed.py --checkpoint PATH [--label NAME] [--key=value ...] [--threads 1]

Times :func:`recbole_diffusion.quick_start.recommend.iter_recommendations` over every user of the
checkpoint's dataset (loading the data and the model is timed apart), with ``--key=value``
overrides of how the model infers (``--inference_steps=5``). Each measured row is appended to
``benchmarks/results/recommend_speed.jsonl`` (a rerun of the same checkpoint and overrides reuses it)
and the table of every row goes to stdout.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from runlog import RunLog

HERE = Path(__file__).resolve().parent


def measure(checkpoint, overrides, k):
    from recbole_diffusion.quick_start.recommend import iter_recommendations

    start = time.perf_counter()
    chunks = iter_recommendations(checkpoint, k=k, config_dict=overrides)
    first = next(chunks)  # the data and model are loaded before the first chunk
    loaded = time.perf_counter()
    rows, users = len(first), first.user.nunique()
    for chunk in chunks:
        rows, users = rows + len(chunk), users + chunk.user.nunique()
    done = time.perf_counter()
    ranking_s = done - loaded
    return {"users": users, "rows": rows, "load_s": loaded - start, "rank_s": ranking_s, "users_per_s": users / ranking_s, "load_avg": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, or a folder (its newest checkpoint)")
    parser.add_argument("--label", default=None, help="the row's name (default: the model's)")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the other benchmarks' setting)")
    args, rest = parser.parse_known_args(argv)
    import torch

    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.config.arguments import parse_command_line
    from recbole_diffusion.quick_start.report import read_jsonl

    torch.set_num_threads(args.threads)
    _, overrides = parse_command_line(rest)
    log = RunLog(HERE / "results" / "recommend_speed.jsonl", {"topk": args.topk, "threads": args.threads})
    from recbole_diffusion.quick_start.recommend import newest_checkpoint

    checkpoint = str(Path(args.checkpoint).resolve())
    checkpoint = newest_checkpoint(checkpoint) if os.path.isdir(checkpoint) else checkpoint
    if log.find(checkpoint=checkpoint, overrides=overrides) is None:
        from recbole_diffusion.utils.checkpoint import load_checkpoint

        model = load_checkpoint(checkpoint)["config"]["model_spec"]
        row = {"checkpoint": checkpoint, "overrides": overrides, "label": args.label or model, **measure(checkpoint, overrides, args.topk)}
        row["command"] = " ".join(["python", "benchmarks/recommend_speed.py", *(sys.argv[1:] if argv is None else argv)])
        log.add(row)
    print("| model | settings | users | users / s | ranking s | loading s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for row in (row for row in read_jsonl(log.path) if row.get("settings") == log.settings):
        settings = ", ".join(f"{key}={value}" for key, value in row["overrides"].items()) or "as trained"
        print(
            f"| {row['label']} | {settings} | {row['users']} | {row['users_per_s']:,.0f} | {row['rank_s']:.1f} | "
            f"{row['load_s']:.1f} | {row['load_avg']:.1f} |"
        )


if __name__ == "__main__":
    main()
