"""The command line of ``run_recbole_diffusion.py``: the plugin's flags, then RecBole's ``--key=value``.

The entry script reads the command line here, once, and hands the ``--key=value`` overrides to
the run, the comparison or every search trial as a config dict; the plugin's Config never reads
``sys.argv`` itself (so a benchmark script's own flags never leak into a model's config).
"""

import argparse
import ast

import yaml

from recbole_diffusion.utils.checks import ConfigError


def build_parser(description=None):
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--model", "-m", type=str, default="DiffRec", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name (default: the config files', else ml-100k)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="number of processes")
    parser.add_argument("--ip", type=str, default="localhost", help="master node ip")
    parser.add_argument("--port", type=str, default="5678", help="master node port")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of jobs")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    parser.add_argument("--tune", type=str, default=None, help="search-space yaml: run a Ray Tune search")
    parser.add_argument("--ray_address", type=str, default=None, help="join this Ray cluster (default: a new local Ray)")
    parser.add_argument("--tune_dir", type=str, default="ray_results", help="where searches are stored")
    parser.add_argument("--tune_name", type=str, default=None, help="search name (default: MODEL-DATASET)")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted search (--tune, or --compare with --tune_trials) from its Ray state, which is pickles: only folders you made",
    )
    parser.add_argument("--compare", type=str, default=None, help="comma-separated models to compare")
    parser.add_argument(
        "--output", type=str, default=None,
        help="the comparison's report folder (default: comparison), or --recommend's file (default: recommendations.csv; .parquet for Parquet)",
    )
    parser.add_argument(
        "--seeds", type=seed_list, default=None, help="comma-separated seeds: one fresh run per model and seed, same split"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="with --compare: runs (model x seed) trained at once, each on an equal share of the CPUs"
    )
    parser.add_argument(
        "--model_config", type=str, default=None,
        help="with --compare: a yaml of per-model settings, one section per model (DIN: {mlp_hidden_size: [80, 40]})",
    )
    parser.add_argument("--reference", type=str, default=None, help="model the others are tested against (default: the first)")
    parser.add_argument(
        "--tune_trials", type=int, default=None, help="with --compare: tune every model with this many trials first (equal budgets)"
    )
    parser.add_argument("--recommend", type=str, default=None, help="checkpoint: write its top-k items of every user (or --users)")
    parser.add_argument("--topk", type=str, default=None, help="with --recommend: items per user (default 10); else RecBole's topk")
    parser.add_argument("--users", type=str, default=None, help="with --recommend: a file of user tokens, one a line")
    parser.add_argument("--candidates", type=str, default=None, help="with --recommend: a CSV of (user, item) rows to score")
    parser.add_argument(
        "--keep_held_out", action="store_true", help="with --recommend: validation and test items stay candidates (training ones never)"
    )
    parser.add_argument("--device", type=str, default=None, help="with --recommend: cpu, cuda, cuda:1 ... (default: the checkpoint's)")
    return parser


RECOMMEND_FLAGS = ("users", "candidates", "keep_held_out", "device")
COMPARE_FLAGS = ("model_config", "jobs", "reference", "tune_trials")


def seed_list(text):
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds={text}: give integers separated by commas, e.g. 2020,2021,2022") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds={text}: give distinct integers separated by commas")
    return seeds


def parse_value(text):
    """A command-line or config-dict string as a Python literal (never ``eval``): numbers, lists,
    dicts, ``None``, ``true`` / ``false`` in any case. A list or dict that is not a Python literal
    is read as YAML's flow style, as in the config files (``[Recall,NDCG]``, ``{uniform: 1}``;
    ``safe_load``: plain values only); anything else stays a string."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        stripped = text.strip()
        if stripped.startswith(("[", "{")):
            try:
                value = yaml.safe_load(stripped)
            except yaml.YAMLError:
                value = None
            if isinstance(value, (list, dict)):
                return value
        return {"true": True, "false": False}.get(stripped.lower(), text)


def parse_command_line(argv, description=None):
    """``(args, overrides)``: the plugin's flags, and the ``--key=value`` config overrides.

    Anything else (``--epochs 5`` without ``=``, a stray word) fails, naming the argument: RecBole
    would ignore it with a warning and train with the default.
    """
    parser = build_parser(description)
    args, rest = parser.parse_known_args(argv)
    overrides = {}
    for arg in rest:
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not (name and sep):
            raise ConfigError(f"command line argument {arg!r}: config overrides are written --key=value")
        if name in overrides and overrides[name] != parse_value(value):
            raise ConfigError(f"command line gives --{name} twice, with different values")
        overrides[name] = parse_value(value)
    args.config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    if args.recommend is None:
        given = [f"--{flag}" for flag in RECOMMEND_FLAGS if getattr(args, flag) not in (None, False)]
        if given:
            raise ConfigError(f"{', '.join(given)} go with --recommend=CHECKPOINT")
        if args.topk is not None:  # RecBole's own topk
            overrides["topk"] = parse_value(args.topk)
    else:
        args.topk = 10 if args.topk is None else parse_value(args.topk)
    if not (args.compare or args.seeds):
        given = [f"--{flag}" for flag in COMPARE_FLAGS if getattr(args, flag) != parser.get_default(flag)]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --compare (or --seeds)")
    return args, overrides
