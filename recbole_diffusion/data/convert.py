"""Convert the data splits published with the papers into RecBole atomic benchmark files.

    python -m recbole_diffusion.data.convert diffrec SRC_DIR OUT_DIR [--name NAME]
    python -m recbole_diffusion.data.convert dreamrec SRC_DIR OUT_DIR --trust-pickle [--name NAME]

``diffrec``: the DiffRec authors' split (``train_list.npy``, ``valid_list.npy``,
``test_list.npy``: int64 arrays of ``[user, item]`` rows, ids 0-based). It writes
``OUT_DIR/NAME/NAME.{train,valid,test}.inter`` and a ready config ``OUT_DIR/NAME/NAME.yaml`` that
makes RecBole use exactly that partition (``benchmark_filename``), with no filtering::

    python run_recbole_diffusion.py --model=DiffRec --dataset=NAME --config_files=OUT_DIR/NAME/NAME.yaml

The timestamp column is a global row counter (train rows first, in file order, then valid, then
test), so each user's chronological order, which T-DiffRec's recency weights rely on, survives.

``dreamrec``: the DreamRec authors' split (``{train,val,test}_data.df``: pickled DataFrames with
``seq`` (the last items, padded at the end with the padding id), ``len_seq`` and ``next``, and
``data_statis.df`` with ``item_num``, the padding id). Every row becomes one (history, next item)
example of a sequential benchmark file, so RecBole evaluates exactly the published examples; a row
whose history is all padding becomes an empty history (RecBole's ``item_length = 0``), which the
plugin's data preparation turns into length 1 over padding, as the authors store it, so that every
sequential model reads a valid position (:mod:`recbole_diffusion.data.utils`). All
``item_num`` items are declared in an ``.item`` file, so every one of them is a candidate.
These files are **pickles**: unpickling runs code chosen by whoever wrote them, so the converter
refuses them unless told ``--trust-pickle`` (``trust_pickle=True``): convert only files you trust
(the ones published with the paper).

Both converters write into a temporary folder beside ``OUT_DIR/NAME`` and move it into place only
when every file is complete: a failure leaves no half-written dataset (and an earlier complete one
of the same name untouched). They delete nothing of the user's: NAME is one plain folder name, the
source may not lie inside ``OUT_DIR/NAME``, and an existing ``OUT_DIR/NAME`` is replaced only when it
holds nothing but the files a conversion writes (else it is refused, naming the folder and files).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager

import numpy as np
import pandas as pd

DIFFREC_SPLITS = ("train", "valid", "test")
DREAMREC_FILES = {"train": "train_data.df", "valid": "val_data.df", "test": "test_data.df"}
SEQUENCE_HEADER = ("row_id:token", "item_id_list:token_seq", "item_id:token")
INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float")


class ConvertError(ValueError):
    """A source file is missing or not in the expected format."""


def dataset_files(dataset_name, splits, item_file=False):
    """The names of the files a conversion writes into ``OUT_DIR/NAME``."""
    names = [f"{dataset_name}.{split}.inter" for split in splits] + [f"{dataset_name}.yaml"]
    return names + ([f"{dataset_name}.item"] if item_file else [])


def check_target(src_dir, out_dir, dataset_name, files):
    """Refuse, before anything is read, a conversion that would destroy data.

    NAME must be one plain folder name (not empty, ``.``, ``..`` or a path); the source may not lie
    inside ``OUT_DIR/NAME`` (replacing it would delete what was just read); an existing
    ``OUT_DIR/NAME`` is replaced only if it holds nothing but the files this conversion writes.
    """
    separators = {os.sep, os.altsep} - {None}
    if dataset_name in ("", ".", "..") or any(sep in dataset_name for sep in separators) or "\0" in dataset_name:
        raise ConvertError(f"--name {dataset_name!r}: give one plain folder name (no path, not '.' or '..')")
    target = os.path.realpath(os.path.join(out_dir, dataset_name))
    source = os.path.realpath(src_dir)
    if source == target or source.startswith(target + os.sep):
        raise ConvertError(f"{src_dir}: the source lies inside the target {target}, which a conversion replaces; choose another OUT_DIR or --name")
    if os.path.lexists(target):
        if not os.path.isdir(target) or os.path.islink(os.path.join(out_dir, dataset_name)):
            raise ConvertError(f"{target}: exists and is not a folder; nothing was written")
        others = sorted(set(os.listdir(target)) - set(files))
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise ConvertError(
                f"{target}: holds files this conversion did not write ({shown}); nothing was written. "
                "Move them, or choose another --name"
            )


@contextmanager
def staged_dataset_dir(out_dir, dataset_name, files):
    """Yield a temporary folder to write ``OUT_DIR/NAME`` into; on success it replaces that folder
    (which :func:`check_target` has found to hold only ``files``), with the ordinary permissions of
    a new folder."""
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{dataset_name}.partial-", dir=out_dir)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    final = os.path.join(out_dir, dataset_name)
    if os.path.isdir(final):
        for name in files:
            if os.path.exists(os.path.join(final, name)):
                os.remove(os.path.join(final, name))
        os.rmdir(final)
    os.replace(staging, final)


def load_pairs(path):
    """An int (n, 2) array of [user, item] rows from a ``.npy`` file (no pickle), checked."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: file not found")
    try:
        array = np.load(path)  # allow_pickle stays False: plain arrays only
    except ValueError as err:  # e.g. an object array, which would need pickle
        raise ConvertError(f"{path}: not a plain numpy array ({err})") from None
    except OSError as err:
        raise ConvertError(f"{path}: cannot be read as a .npy file ({err})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 2:
        raise ConvertError(f"{path}: expected an array of shape (n, 2) of [user, item] rows, got shape {getattr(array, 'shape', None)}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ConvertError(f"{path}: expected integer ids, got dtype {array.dtype}")
    if len(array) and array.min() < 0:
        raise ConvertError(f"{path}: ids must be >= 0, found {array.min()}")
    return array.astype(np.int64, copy=False)


def write_inter(path, users, items, times):
    """One atomic ``.inter`` file (tab separated, RecBole typed header)."""
    frame = pd.DataFrame({INTER_HEADER[0]: users, INTER_HEADER[1]: items, INTER_HEADER[2]: times})
    frame.to_csv(path, sep="\t", index=False, lineterminator="\n")


def benchmark_yaml(data_path, dataset_name):
    """Text of the RecBole config that loads the benchmark split as is."""
    return (
        f"# Written by recbole_diffusion.data.convert: the split as published, loaded as is.\n"
        f"data_path: {json.dumps(data_path)}\n"
        f"dataset: {json.dumps(dataset_name)}\n"
        f"benchmark_filename: [train, valid, test]\n"
        f"USER_ID_FIELD: user_id\n"
        f"ITEM_ID_FIELD: item_id\n"
        f"TIME_FIELD: timestamp\n"
        f"load_col:\n"
        f"  inter: [user_id, item_id, timestamp]\n"
        f"# no filtering: the split is already final\n"
        f"user_inter_num_interval: ~\n"
        f"item_inter_num_interval: ~\n"
        f"val_interval: ~\n"
        f"rm_dup_inter: ~\n"
        f"eval_args:\n"
        f"  group_by: user\n"
        f"  order: TO\n"
        f"  mode: full\n"
    )


def diffrec_to_atomic(src_dir, out_dir, dataset_name="ml-1m-diffrec"):
    """Convert the DiffRec authors' ``{train,valid,test}_list.npy`` into RecBole benchmark files.

    Returns the path of the written config file ``OUT_DIR/NAME/NAME.yaml``.
    """
    files = dataset_files(dataset_name, DIFFREC_SPLITS)
    check_target(src_dir, out_dir, dataset_name, files)
    arrays = [load_pairs(os.path.join(src_dir, f"{split}_list.npy")) for split in DIFFREC_SPLITS]
    out_dir = os.path.abspath(out_dir)
    with staged_dataset_dir(out_dir, dataset_name, files) as dataset_dir:
        start = 0
        for split, array in zip(DIFFREC_SPLITS, arrays):
            times = np.arange(start, start + len(array), dtype=np.int64)  # whole numbers: written fast, read as float
            start += len(array)
            write_inter(os.path.join(dataset_dir, f"{dataset_name}.{split}.inter"), array[:, 0], array[:, 1], times)
        with open(os.path.join(dataset_dir, f"{dataset_name}.yaml"), "w", encoding="utf-8") as f:
            f.write(benchmark_yaml(out_dir, dataset_name))
    return os.path.join(out_dir, dataset_name, f"{dataset_name}.yaml")


def read_trusted_pickle(path, columns):
    """A DataFrame from a pickle file the user trusts, with the expected columns."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: file not found")
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame) or not set(columns) <= set(frame.columns):
        raise ConvertError(f"{path}: expected a DataFrame with columns {list(columns)}")
    return frame


def dreamrec_histories(frame, padding_id, path):
    """The real history of each row: the items before the first padding id."""
    histories = []
    for row, (seq, length) in enumerate(zip(frame["seq"], frame["len_seq"])):
        items = [int(item) for item in seq if int(item) != padding_id]
        if items != [int(item) for item in seq[: len(items)]] or len(items) not in (length, 0):
            raise ConvertError(f"{path}: row {row} has seq {list(seq)} with len_seq {length}: expected real items, then padding {padding_id}")
        histories.append(items)
    return histories


def sequence_yaml(data_path, dataset_name, max_length):
    return (
        f"# Written by recbole_diffusion.data.convert: the published (history, next item) examples, as is.\n"
        f"data_path: {json.dumps(data_path)}\n"
        f"dataset: {json.dumps(dataset_name)}\n"
        f"benchmark_filename: [train, valid, test]\n"
        f"USER_ID_FIELD: row_id\n"
        f"ITEM_ID_FIELD: item_id\n"
        f"TIME_FIELD: ~\n"
        f"load_col:\n"
        f"  inter: [row_id, item_id_list, item_id]\n"
        f"  item: [item_id]\n"
        f"alias_of_item_id: [item_id_list]\n"
        f"MAX_ITEM_LIST_LENGTH: {max_length}\n"
        f"user_inter_num_interval: ~\n"
        f"item_inter_num_interval: ~\n"
        f"val_interval: ~\n"
        f"rm_dup_inter: ~\n"
        f"filter_inter_by_user_or_item: False\n"
        f"eval_args:\n"
        f"  order: TO\n"
        f"  mode: full\n"
    )


def dreamrec_to_atomic(src_dir, out_dir, dataset_name="zhihu-dreamrec", trust_pickle=False):
    """Convert the DreamRec authors' pickled split into a RecBole sequential benchmark.

    Unpickles ``SRC_DIR/*.df`` only with ``trust_pickle=True``: use it only on files you trust.
    Returns the written config's path.
    """
    if not trust_pickle:
        raise ConvertError(
            f"{src_dir}: the DreamRec files are pickles, and unpickling runs whatever code their author put in "
            "them; nothing was read. If you trust them (e.g. the files published with the paper), pass --trust-pickle"
        )
    files = dataset_files(dataset_name, DREAMREC_FILES, item_file=True)
    check_target(src_dir, out_dir, dataset_name, files)
    statis = read_trusted_pickle(os.path.join(src_dir, "data_statis.df"), ["seq_size", "item_num"])
    max_length, padding_id = int(statis["seq_size"].iloc[0]), int(statis["item_num"].iloc[0])
    frames = {
        split: read_trusted_pickle(os.path.join(src_dir, name), ["seq", "len_seq", "next"])
        for split, name in DREAMREC_FILES.items()
    }
    out_dir = os.path.abspath(out_dir)
    with staged_dataset_dir(out_dir, dataset_name, files) as dataset_dir:
        for split, frame in frames.items():
            path = os.path.join(src_dir, DREAMREC_FILES[split])
            histories = dreamrec_histories(frame, padding_id, path)
            out = pd.DataFrame(
                {
                    SEQUENCE_HEADER[0]: [f"{split}{row}" for row in range(len(frame))],
                    SEQUENCE_HEADER[1]: [" ".join(map(str, items)) for items in histories],
                    SEQUENCE_HEADER[2]: frame["next"].astype(int).to_numpy(),
                }
            )
            out.to_csv(os.path.join(dataset_dir, f"{dataset_name}.{split}.inter"), sep="\t", index=False, lineterminator="\n")
        pd.DataFrame({"item_id:token": np.arange(padding_id)}).to_csv(
            os.path.join(dataset_dir, f"{dataset_name}.item"), sep="\t", index=False, lineterminator="\n"
        )
        with open(os.path.join(dataset_dir, f"{dataset_name}.yaml"), "w", encoding="utf-8") as f:
            f.write(sequence_yaml(out_dir, dataset_name, max_length))
    return os.path.join(out_dir, dataset_name, f"{dataset_name}.yaml")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recbole_diffusion.data.convert",
        description="Convert published data splits into RecBole atomic benchmark files.",
    )
    commands = parser.add_subparsers(dest="format", required=True)
    diffrec = commands.add_parser("diffrec", help="the DiffRec authors' {train,valid,test}_list.npy")
    diffrec.add_argument("src_dir", help="folder with train_list.npy, valid_list.npy, test_list.npy")
    diffrec.add_argument("out_dir", help="RecBole data_path: the files go to OUT_DIR/NAME/")
    diffrec.add_argument("--name", default="ml-1m-diffrec", help="dataset name (default: %(default)s)")
    dreamrec = commands.add_parser(
        "dreamrec", help="the DreamRec authors' {train,val,test}_data.df (pickles: only files you trust)"
    )
    dreamrec.add_argument("src_dir", help="folder with train_data.df, val_data.df, test_data.df, data_statis.df")
    dreamrec.add_argument("out_dir", help="RecBole data_path: the files go to OUT_DIR/NAME/")
    dreamrec.add_argument("--name", default="zhihu-dreamrec", help="dataset name (default: %(default)s)")
    dreamrec.add_argument(
        "--trust-pickle", action="store_true", help="unpickle the source files (runs code their author chose: trusted files only)"
    )
    args = parser.parse_args(argv)
    try:
        if args.format == "diffrec":
            config_path = diffrec_to_atomic(args.src_dir, args.out_dir, args.name)
        else:
            config_path = dreamrec_to_atomic(args.src_dir, args.out_dir, args.name, trust_pickle=args.trust_pickle)
    except ConvertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(config_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
