"""Closed-form item-item recommenders: fitted once from the training interactions, no training loop.

A subclass computes a dense item x item matrix W from the binary user x item training matrix R
(:meth:`ItemItemRecommender.item_item`); a user's scores are ``r_u W``. As RecBole's EASE: a
``TRADITIONAL`` model (RecBole's TraditionalTrainer fits it in one pass), W and R kept as its
``other_parameter`` (stored in the checkpoint as tensors).
"""

import numpy as np
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType


class ItemItemRecommender(GeneralRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.dummy_param = torch.nn.Parameter(torch.zeros(1))  # RecBole's trainer needs a parameter
        self.interaction_matrix = dataset.inter_matrix(form="csr").astype(np.float32)
        self.item_similarity = np.asarray(self.item_item(self.interaction_matrix), dtype=np.float32)
        self.other_parameter_name = ["interaction_matrix", "item_similarity"]

    def item_item(self, interactions):
        """W (dense, items x items) from R (CSR, users x items, 0/1)."""
        raise NotImplementedError

    def calculate_loss(self, interaction):
        return torch.nn.Parameter(torch.zeros(1))  # fitted in __init__: nothing to learn

    def predict(self, interaction):
        users = interaction[self.USER_ID].cpu().numpy()
        items = interaction[self.ITEM_ID].cpu().numpy()
        scores = np.asarray(self.interaction_matrix[users].multiply(self.item_similarity[:, items].T).sum(axis=1)).reshape(-1)
        return torch.from_numpy(scores).to(self.device)

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID].cpu().numpy()
        scores = self.interaction_matrix[users] @ self.item_similarity
        return torch.from_numpy(np.asarray(scores).reshape(-1)).to(self.device)
