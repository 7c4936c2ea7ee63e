"""Train and test a model of recbole-diffusion (or of RecBole), like RecBole's run_recbole.py.

    python run_recbole_diffusion.py --model=DiffRec --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

``--model=recbole.DiffRec`` runs RecBole's built-in class of a name the plugin also has.

    --tune=SPACE.yaml [--ray_address=HOST:PORT] [--tune_dir=ray_results] [--resume]
        a Ray Tune search of --model over SPACE.yaml (see properties/tune/)
    --compare=DiffRec,recbole.DiffRec,BPR [--output=comparison]
        train each model on the same data and seed; write a table (md, csv) and a plot (html)
"""

import argparse

import pandas as pd

from recbole_diffusion.quick_start import run


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="DiffRec", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="number of processes")
    parser.add_argument("--ip", type=str, default="localhost", help="master node ip")
    parser.add_argument("--port", type=str, default="5678", help="master node port")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of jobs")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    parser.add_argument("--tune", type=str, default=None, help="search-space yaml: run a Ray Tune search")
    parser.add_argument("--ray_address", type=str, default=None, help="join this Ray cluster (default: local Ray)")
    parser.add_argument("--tune_dir", type=str, default="ray_results", help="where searches are stored")
    parser.add_argument("--tune_name", type=str, default=None, help="search name (default: MODEL-DATASET)")
    parser.add_argument("--resume", action="store_true", help="resume the search of that name")
    parser.add_argument("--compare", type=str, default=None, help="comma-separated models to compare")
    parser.add_argument("--output", type=str, default="comparison", help="directory of the comparison report")
    args, _ = parser.parse_known_args()  # --key=value overrides are read by RecBole's Config
    args.config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    return args


def tune(args):
    from recbole_diffusion.quick_start.tune import run_search

    best, trials = run_search(
        args.model, args.dataset, args.tune, args.config_file_list, ray_address=args.ray_address,
        storage_path=args.tune_dir, name=args.tune_name, resume=args.resume,
    )
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(trials.drop(columns="error").to_string(index=False))
    print(f"\nbest config: {best['config']}")
    print(f"best valid ({best['valid_metric']}): {best['valid']}")
    print(f"its test: {best['test']}")
    print(f"all trials: {args.tune_dir}/{args.tune_name or f'{args.model}-{args.dataset}'}/trials.csv")


def compare(args):
    from recbole_diffusion.quick_start.compare import compare as run_comparison, markdown_table

    models = [name.strip() for name in args.compare.split(",") if name.strip()]
    rows = run_comparison(models, args.dataset, args.config_file_list, output_dir=args.output)
    print(markdown_table(rows))
    print(f"\nwritten: {args.output}/comparison.md, comparison.csv, comparison.html")


def main():
    args = parse_args()
    if args.tune:
        return tune(args)
    if args.compare:
        return compare(args)
    run(
        args.model, args.dataset, config_file_list=args.config_file_list, nproc=args.nproc,
        world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset,
    )


if __name__ == "__main__":
    main()
