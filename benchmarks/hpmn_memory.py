"""HPMN training cost against history length: one markdown table (a benchmark, not a test).

    python benchmarks/hpmn_memory.py [--lengths 50 200 1000] [--batch-size 256] [--threads 1]

Each length runs in a fresh process: HPMN with its default sizes (properties/model/HPMN.yaml) over
random right-padded histories of exactly that length, ``--steps`` training steps (forward, log
loss + covariance regulariser, backward, Adam step). ``peak RSS`` is the process's peak resident
memory, ``step RSS`` its growth over the training steps (what the sequence length costs: the
recurrent memory keeps one [batch, D, d] state per step for backpropagation, so it grows linearly
with the length; no [L, L] tensor is ever built). No dataset is loaded.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from types import SimpleNamespace


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args):
    import torch

    torch.set_num_threads(args.threads)
    from recbole.data.interaction import Interaction

    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.config import Config
    from recbole_diffusion.model.sequential_recommender.hpmn import HPMN

    length, n_items = args.worker_length, 1683  # ml-100k's item count
    config = Config(model="HPMN", dataset="ml-100k", config_dict={"MAX_ITEM_LIST_LENGTH": length})
    torch.manual_seed(0)
    model = HPMN(config, SimpleNamespace(num=lambda field: n_items))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = Interaction(
        {
            config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]: torch.randint(1, n_items, (args.batch_size, length)),
            config["ITEM_LIST_LENGTH_FIELD"]: torch.full((args.batch_size,), length),
            config["ITEM_ID_FIELD"]: torch.randint(1, n_items, (args.batch_size,)),
            config["LABEL_FIELD"]: torch.randint(0, 2, (args.batch_size,)).float(),
        }
    )
    before = rss_mib()
    start = time.perf_counter()
    for _ in range(args.steps):
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    seconds = (time.perf_counter() - start) / args.steps
    print("RESULT " + json.dumps({"length": length, "s_per_step": seconds, "step_rss_mib": rss_mib() - before, "peak_rss_mib": rss_mib()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-length", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_length is not None:
        return worker(args)

    lines = [
        f"| history length | s / training step (batch {args.batch_size}) | step RSS growth (MiB) | peak RSS (MiB) |",
        "|---:|---:|---:|---:|",
    ]
    for length in args.lengths:
        command = [sys.executable, __file__, "--worker-length", str(length), "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--threads", str(args.threads)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        row = json.loads(output.split("RESULT ", 1)[1])
        lines.append(f"| {length} | {row['s_per_step']:.2f} | {row['step_rss_mib']:.0f} | {row['peak_rss_mib']:.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
