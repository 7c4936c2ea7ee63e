"""Train and test a model of recbole-diffusion (or of RecBole), like RecBole's run_recbole.py.

    python run_recbole_diffusion.py --model=DiffRec --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

``--model=recbole.DiffRec`` runs RecBole's built-in class of a name the plugin also has.

    --tune=SPACE.yaml [--ray_address=HOST:PORT] [--tune_dir=ray_results] [--resume]
        a Ray Tune search of --model over SPACE.yaml (see properties/tune/)
    --recommend=CHECKPOINT [--topk=10] [--users=FILE | --candidates=FILE] [--keep_held_out] [--device=cpu] [--output=FILE]
        the top-k items of every user (CSV; Parquet for a .parquet name), or the scores of candidate rows
    --compare=DiffRec,recbole.DiffRec,BPR [--seeds=2020,2021,2022] [--reference=DiffRec] [--jobs=1] [--model_config=FILE]
        [--output=comparison]
        train each model with each seed on one split; write mean ± std, p-values against the
        reference (md, csv) and a page with figures (html); --seeds alone does this for --model
"""

import os
import sys

import pandas as pd

from recbole_diffusion.config.arguments import parse_command_line
from recbole_diffusion.quick_start import run
from recbole_diffusion.quick_start.compare import ComparisonInterrupted
from recbole_diffusion.quick_start.tune import SearchError
from recbole_diffusion.trainer import TrainingDivergedError
from recbole_diffusion.utils import ConfigError
from recbole_diffusion.utils.utils import pip_name, signals_interrupt
from recbole_diffusion.utils.checkpoint import CheckpointError

# Failures that say what went wrong in one line: exit status 1, no traceback.
USER_ERRORS = (ConfigError, CheckpointError, TrainingDivergedError, SearchError, ComparisonInterrupted)


def tune(args, overrides):
    from recbole_diffusion.quick_start.tune import run_search

    best, trials = run_search(
        args.model, args.dataset, args.tune, args.config_file_list, overrides, ray_address=args.ray_address,
        storage_path=args.tune_dir, name=args.tune_name, resume=args.resume,
    )
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(trials.drop(columns=["error", "checkpoint", "trial_dir"]).to_string(index=False))
    print(f"\nbest config: {best['config']} ({best['status']})")
    print(f"best valid ({best['valid_metric']}): {best['valid']}")
    print(f"its test: {best['test']}")
    print(f"its checkpoint: {best['checkpoint'] or '(none: the trial stopped before its first validation)'}")
    print(f"all trials: {os.path.join(os.path.dirname(best['path']), 'trials.csv')}")


def recommend(args, overrides):
    """--recommend=CHECKPOINT: the top-k items of every user (or the scores of --candidates) to --output."""
    from recbole_diffusion.quick_start.recommend import iter_recommendations, read_candidates, read_tokens, write_recommendations

    output = args.output or "recommendations.csv"
    users = read_tokens(args.users) if args.users else None
    candidates = read_candidates(args.candidates) if args.candidates else None
    chunks = iter_recommendations(
        args.recommend, users=users, k=args.topk, candidates=candidates, keep_held_out=args.keep_held_out, device=args.device,
        config_dict=overrides, show_progress=sys.stderr.isatty(),
    )
    rows = write_recommendations(chunks, output)
    print(f"written: {output} ({rows} rows)")


def compare(args, overrides):
    """--compare=A,B (or one --model with --seeds): every model x seed, then the report."""
    from recbole_diffusion.quick_start.compare import compare as run_comparison, read_model_config

    models = [name.strip() for name in (args.compare or args.model).split(",") if name.strip()]
    output = args.output or "comparison"
    model_config = read_model_config(args.model_config, models) if args.model_config else None
    run_comparison(
        models, args.dataset, args.config_file_list, overrides, model_config=model_config, output_dir=output, seeds=args.seeds,
        reference=args.reference,
        tune_trials=args.tune_trials, ray_address=args.ray_address, resume=args.resume, jobs=args.jobs,
    )
    with open(os.path.join(output, "comparison.md"), encoding="utf-8") as f:
        print(f.read())
    print(f"written: {output}/comparison.md, summary.csv, runs.csv, comparison.html")


def main():
    # Ctrl-C and SIGTERM end every command the same way, with one line and exit 1, however the
    # process was started (bash's `cmd &` in a script starts it with SIGINT ignored).
    try:
        with signals_interrupt():
            args, overrides = parse_command_line(sys.argv[1:], __doc__)
            dispatch(args, overrides)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("error: interrupted (Ctrl-C or SIGTERM)")
    except ModuleNotFoundError as error:  # an optional package a RecBole model imports when it runs (NCL: faiss)
        package = pip_name(error.name or "")
        sys.exit(f"error: this run needs the package {package}, which recbole-diffusion does not install: pip install {package}")


def dispatch(args, overrides):
    if args.recommend:
        return recommend(args, overrides)
    if args.tune:
        return tune(args, overrides)
    if args.compare or args.seeds:
        return compare(args, overrides)
    if args.nproc < 1:
        raise ConfigError(f"--nproc={args.nproc}: give the number of processes, an integer >= 1")
    run(
        args.model, args.dataset, config_file_list=args.config_file_list, config_dict=overrides, nproc=args.nproc,
        world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset,
    )


if __name__ == "__main__":
    main()
