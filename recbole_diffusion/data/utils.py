"""Dataset preparation shared by every entry point of the plugin.

RecBole's ``create_dataset`` and ``load_split_dataloaders`` unpickle any cache file found at
``<checkpoint_dir>/<dataset>-<DatasetClass>.pth`` / ``<dataset>-for-<model>-dataloader.pth`` (or
``dataset_save_path`` / ``dataloaders_save_path``; ``recbole/data/utils.py:58-61``, ``113-122``): a
file dropped there would run code. The plugin builds the dataset from its atomic files every time
(:func:`create_dataset`) and never loads a dataloader cache (:func:`load_split_dataloaders`); the
hooks put both in place of RecBole's, so RecBole's own entry points do the same once the plugin is
imported.
"""

import importlib
import os
from logging import getLogger

from recbole.utils import ModelType

from recbole_diffusion.utils.checks import ConfigError

# RecBole's dataset class by model type (recbole/data/utils.py:44-51), unless the model has its own.
DATASET_CLASSES = {
    ModelType.GENERAL: "Dataset", ModelType.SEQUENTIAL: "SequentialDataset", ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset", ModelType.TRADITIONAL: "Dataset", ModelType.DECISIONTREE: "Dataset",
}


def atomic_files(config):
    """The atomic files RecBole will read for the config's dataset (those that exist)."""
    folder, name = config["data_path"], config["dataset"]
    inter = [f"{name}.{part}.inter" for part in config["benchmark_filename"]] if config["benchmark_filename"] else [f"{name}.inter"]
    candidates = inter + [f"{name}.user", f"{name}.item"]
    return [os.path.join(folder, file) for file in candidates if os.path.isfile(os.path.join(folder, file))]


def check_atomic_file(path, separator, encoding, time_field=None):
    """Stop at the first row that RecBole would read wrong, naming the file, the line and the field.

    A row with more fields than the header makes RecBole's reader (pandas, Python engine) shift the
    whole file; one with fewer fills the missing values in; an empty or NaN time is filled with
    the mean time (and T-DiffRec's recency weights, sequential orders, time splits would use it).
    """
    with open(path, encoding=encoding) as f:
        header = f.readline().rstrip("\r\n").split(separator)
        names = [field.split(":")[0] for field in header]
        time_column = names.index(time_field) if time_field in names else None
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            values = line.split(separator)
            if len(values) != len(header):
                raise ConfigError(
                    f"dataset file '{path}', line {number}: {len(values)} fields where its header has {len(header)} "
                    f"({', '.join(header)}); RecBole would misread the file"
                )
            if time_column is not None and values[time_column].strip().lower() in ("", "nan"):
                raise ConfigError(
                    f"dataset file '{path}', line {number}: field '{header[time_column]}' = {values[time_column]!r} is "
                    "not a time; RecBole would fill it in with the mean time. Give every row its time (or set TIME_FIELD: ~)"
                )


def create_dataset(config):
    """RecBole's dataset for the config's model, always built from the atomic files (no cache),
    after :func:`check_atomic_file` on each of them."""
    for path in atomic_files(config):
        check_atomic_file(path, config["field_separator"], config["encoding"], config["TIME_FIELD"])
    module = importlib.import_module("recbole.data.dataset")
    name = config["model"] + "Dataset"
    dataset_class = getattr(module, name) if hasattr(module, name) else getattr(module, DATASET_CLASSES[config["MODEL_TYPE"]])
    return dataset_class(config)


def load_split_dataloaders(config):
    """No cached dataloaders, ever: :func:`recbole.data.data_preparation` then splits the dataset."""
    return None


def read_empty_histories_from_padding(dataset):
    """Give rows with an empty history ``item_length = 1``, so they read the padding position.

    RecBole's own data augmentation never makes such rows, but a benchmark file can (DreamRec's
    Zhihu split has 11,714, stored by its authors as all padding with ``len_seq = 1``). RecBole's
    sequential models read the output at ``item_length - 1``: -1 for an empty history, an index
    error on CPU and a wrong read on GPU. With length 1 every model reads position 0, whose item is
    the padding id, as the authors' data has it.
    """
    field = getattr(dataset, "item_list_length_field", None)
    if field is None or dataset.inter_feat is None or field not in dataset.inter_feat:
        return dataset
    lengths = dataset.inter_feat[field]  # a pandas column until RecBole's dataset.build()
    empty = int((lengths == 0).sum())
    if empty:
        dataset.inter_feat[field] = lengths.clip(lower=1)
        getLogger().info(f"{empty} rows of {dataset.dataset_name} have an empty history: they read the padding position")
    return dataset


def create_plugin_dataset(config):
    """:func:`create_dataset`, then the plugin's fixes above."""
    return read_empty_histories_from_padding(create_dataset(config))


def check_splits(config, dataset, valid_data, test_data):
    """An empty validation or test split stops the run, saying why (RecBole would train, then print
    ``test result: None`` and exit 0)."""
    for part, data in (("validation", valid_data), ("test", test_data)):
        if data is not None and len(data.dataset) == 0:
            raise ConfigError(
                f"dataset '{config['dataset']}' ({', '.join(atomic_files(config)) or config['data_path']}): the {part} split "
                f"is empty ({dataset.user_num - 1} users, {dataset.inter_num} interactions, eval_args split "
                f"{(config['eval_args'] or {}).get('split')}): users need more interactions than there are parts of the "
                "split (e.g. user_inter_num_interval: '[3,inf)')"
            )
