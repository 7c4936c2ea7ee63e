"""Training dataloaders beyond RecBole's."""

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader


class UserSampledTrainDataLoader(TrainDataLoader):
    """Training interactions drawn as LightGCN's code draws them (``train_sampling: user``).

    RecBole's :class:`~recbole.data.dataloader.TrainDataLoader` goes through every training
    interaction once an epoch, so a user weighs in proportion to their interactions. LightGCN's
    code (He et al., SIGIR 2020; its ``UniformSample_original``) instead draws, as many times as
    there are training interactions, a user uniformly at random and then one of that user's
    training interactions uniformly: every user weighs the same. Here the draws come from the
    loader's generator (seeded by ``seed``, and kept in a training state like RecBole's shuffle);
    negatives are sampled as RecBole samples them. Deviation: users without a training
    interaction are never drawn, where LightGCN's code draws them and skips the draw (fewer pairs
    an epoch).
    """

    def __init__(self, config, dataset, sampler, shuffle=False):
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        users = dataset.inter_feat[dataset.uid_field].numpy()
        self._rows = np.argsort(users, kind="stable")  # the interactions, grouped by user
        counts = np.bincount(users)
        self._users = np.flatnonzero(counts)
        self._counts = counts[self._users]
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])

    def collate_fn(self, index):
        n = len(index)  # a batch of n fresh draws; the positions RecBole's sampler gives are not used
        drawn = torch.randint(len(self._users), (n,), generator=self.generator).numpy()
        offsets = (torch.rand(n, generator=self.generator, dtype=torch.float64).numpy() * self._counts[drawn]).astype(np.int64)
        return super().collate_fn(self._rows[self._starts[drawn] + offsets])
