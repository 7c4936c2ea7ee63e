r"""TDiffRec (T-DiffRec)
################################################

Reference:
    Wenjie Wang et al. "Diffusion Recommender Model." SIGIR 2023, Sec. 3.5 (T-DiffRec).

DiffRec on recency-weighted interaction vectors: per user, the training interactions in
chronological order get weights ``linspace(w_min, w_max, n)`` (the paper's Eq. (16); a user with
one interaction gets ``w_min``, as ``numpy.linspace`` gives). The weighted vector is both the
training target x_0 and the starting point of inference, as in the authors' code. Interactions
with equal times keep their order in the training split.

Needs the dataset's time field (``TIME_FIELD``, loaded in ``load_col``); stops with a clear error
otherwise.
"""

import numpy as np
import torch

from recbole_diffusion.model.general_recommender.diffrec import DiffRec
from recbole_diffusion.utils.checks import ConfigError, require


def recency_weights(users, times, n_users, w_min, w_max):
    """Per interaction: (rank within its user by time, weight), weights linspace(w_min, w_max)."""
    order = np.lexsort((np.arange(len(users)), times, users))
    counts = np.bincount(users, minlength=n_users)
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - starts[users[order]]
    span = np.maximum(counts[users] - 1, 1)
    return rank, w_min + (w_max - w_min) * rank / span


class TDiffRec(DiffRec):
    r"""DiffRec with interactions reweighted by recency (T-DiffRec)."""

    @staticmethod
    def check_config(config):
        DiffRec.check_config(config)
        require(config["TIME_FIELD"] is not None, "TIME_FIELD", config["TIME_FIELD"], "TDiffRec needs the dataset's time field")
        require(0 <= config["w_min"] <= config["w_max"], "w_min", config["w_min"], f"must be in [0, w_max = {config['w_max']!r}]")

    def __init__(self, config, dataset):
        self.w_min = config["w_min"]
        self.w_max = config["w_max"]
        super().__init__(config, dataset)

    def build_histroy_items(self, dataset):
        time_field = dataset.time_field
        if time_field is None or time_field not in dataset.inter_feat:
            raise ConfigError(
                f"config key 'TIME_FIELD' = {time_field!r}: {type(self).__name__} needs a time column in the "
                f"'{dataset.dataset_name}' interactions (add it to load_col: inter: [...])"
            )
        users = dataset.inter_feat[dataset.uid_field].numpy()
        items = dataset.inter_feat[dataset.iid_field].numpy()
        times = dataset.inter_feat[time_field].numpy()
        rank, weights = recency_weights(users, times, dataset.user_num, self.w_min, self.w_max)
        width = int(rank.max()) + 1 if len(rank) else 1
        history_id = torch.zeros(dataset.user_num, width, dtype=torch.long)
        history_value = torch.zeros(dataset.user_num, width)
        history_id[users, rank] = torch.from_numpy(items).long()
        history_value[users, rank] = torch.from_numpy(weights).float()
        self.history_item_id = history_id.to(self.device)
        self.history_item_value = history_value.to(self.device)
