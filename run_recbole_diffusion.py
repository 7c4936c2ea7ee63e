"""Train and test a model of recbole-diffusion (or of RecBole), like RecBole's run_recbole.py.

    python run_recbole_diffusion.py --model=DiffRec --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

``--model=recbole.DiffRec`` runs RecBole's built-in class of a name the plugin also has.
"""

import argparse

from recbole_diffusion.quick_start import run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="DiffRec", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="number of processes")
    parser.add_argument("--ip", type=str, default="localhost", help="master node ip")
    parser.add_argument("--port", type=str, default="5678", help="master node port")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of jobs")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    args, _ = parser.parse_known_args()  # --key=value overrides are read by RecBole's Config
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    run(
        args.model,
        args.dataset,
        config_file_list=config_file_list,
        nproc=args.nproc,
        world_size=args.world_size,
        ip=args.ip,
        port=args.port,
        group_offset=args.group_offset,
    )


if __name__ == "__main__":
    main()
