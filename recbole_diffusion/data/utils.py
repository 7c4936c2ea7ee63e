"""Dataset preparation shared by every entry point of the plugin."""

from logging import getLogger

from recbole.data import create_dataset


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
    """RecBole's ``create_dataset``, then the plugin's fixes above."""
    return read_empty_histories_from_padding(create_dataset(config))
