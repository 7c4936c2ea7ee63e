"""Benchmark: DreamRec's 500-step test pass on the authors' Zhihu split, with the denoiser's
step-invariant shares computed once per generation (the plugin's sampler) against two plain
denoiser calls per step (conditional and null, batched together: the plugin's previous sampler).

    python benchmarks/dreamrec_sampling.py [--repeats 2] [--threads 1]

The pass time does not depend on the weights, so the model is freshly initialised (seed 2020);
both samplers start from the same noise and their scores are compared. Converts the split from
``../shared/data/dreamrec-zhihu`` (the files published with the paper) if needed.
"""

import argparse
import os
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parent.parent / "shared" / "data" / "dreamrec-zhihu"


def two_call_denoiser(model, condition):
    """The baseline: f(x_t, c, t) and f(x_t, null, t) as one batched call of the full network."""
    from recbole_diffusion.model.diffusion import classifier_free_guidance

    null = model.null_condition.expand_as(condition)

    def denoise(x_t, t):
        conditional, unconditional = model.denoiser(torch.cat([x_t, x_t]), torch.cat([condition, null]), torch.cat([t, t])).chunk(2)
        return classifier_free_guidance(conditional, unconditional, model.guidance_weight)

    return denoise


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(DEFAULT_SRC))
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.config import Config
    from recbole_diffusion.data.convert import dreamrec_to_atomic
    from recbole_diffusion.quick_start import build

    config_file = Path(args.data_dir) / "zhihu-dreamrec" / "zhihu-dreamrec.yaml"
    if not config_file.is_file():
        config_file = dreamrec_to_atomic(args.src, args.data_dir, trust_pickle=True)  # the files published with the paper
    config = Config(model="DreamRec", config_file_list=[str(config_file)], config_dict={"show_progress": False, "seed": 2020})
    _, (_, _, test_data), model, trainer = build(config)
    model.eval()
    hoisted = type(model).guided_denoiser
    samplers = {"two calls per step (before)": lambda self, c: two_call_denoiser(self, c), "step-invariant shares hoisted (now)": hoisted}
    seconds, scores = {name: [] for name in samplers}, {}
    for _ in range(args.repeats):
        for name, sampler in samplers.items():  # interleaved, so both see the same machine load
            type(model).guided_denoiser = sampler
            torch.manual_seed(7)
            start = time.perf_counter()
            result = trainer.evaluate(test_data, load_best_model=False)
            seconds[name].append(time.perf_counter() - start)
            scores[name] = dict(result)
    type(model).guided_denoiser = hoisted
    before, now = (min(values) for values in seconds.values())
    print(f"DreamRec, T = {config['steps']} DDPM steps, {len(test_data.dataset)} Zhihu test rows, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| sampler | s / test pass (best of %d) | test HR@20 | test NDCG@20 |" % args.repeats)
    print("|---|---|---|---|")
    for name in samplers:
        print(f"| {name} | {min(seconds[name]):.1f} | {scores[name]['hit@20']:.4f} | {scores[name]['ndcg@20']:.4f} |")
    print(f"\nspeed-up: {before / now:.2f}x")


if __name__ == "__main__":
    main()
