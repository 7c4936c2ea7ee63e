r"""GF-CF: graph filtering for collaborative filtering, in closed form.

Shen, Wu, Zhang, Chen, Kang, Liu, Zhao, Bian, Wang, "How Powerful is Graph Convolution for
Recommendation?", CIKM 2021 (Section 4.2, Eq. 9, "GF-CF"); a strong simple baseline of Benigni et
al., "Diffusion Recommender Models and the Illusion of Progress" (2025).

With R the binary user x item training matrix and D_U, D_I its user and item degrees, the
normalised matrix is R~ = D_U^{-1/2} R D_I^{-1/2} and the normalised item-item matrix
P~ = R~^T R~ (a linear low-pass filter of the item graph). The ideal low-pass filter keeps the
``ideal_rank`` (k) leading right singular vectors V_k of R~. A user's scores are

    s_u = r_u ( P~ + alpha * D_I^{-1/2} V_k V_k^T D_I^{1/2} ),          (Eq. 9)

alpha = ``ideal_weight``. Defaults: alpha = 0.3 and k = 256, the authors' settings.

Deliberate choices: the whole filter is one dense item x item matrix (the authors' code applies
the two terms per batch; same scores); zero degrees give zero rows (the authors' code sets the
infinite inverse degree to 0 too); V_k comes from ARPACK (``scipy.sparse.linalg.svds``) seeded by
``seed``, or from a full SVD when k is at least the smaller side of R.
"""

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recbole_diffusion.model.item_item import ItemItemRecommender
from recbole_diffusion.utils.checks import is_int, require


def gfcf_filter(interactions, ideal_weight, ideal_rank, seed=0):
    """The GF-CF filter (dense float64, items x items) of a binary users x items matrix."""
    matrix = sp.csr_matrix(interactions, dtype=np.float64)
    inverse_sqrt = lambda degree: np.power(degree, -0.5, out=np.zeros_like(degree), where=degree > 0)  # noqa: E731
    item_degree = np.asarray(matrix.sum(axis=0)).reshape(-1)
    normalised = sp.diags(inverse_sqrt(np.asarray(matrix.sum(axis=1)).reshape(-1))) @ matrix @ sp.diags(inverse_sqrt(item_degree))
    linear = (normalised.T @ normalised).toarray()
    if ideal_weight == 0:
        return linear
    if ideal_rank >= min(normalised.shape) - 1:
        vectors = np.linalg.svd(normalised.toarray(), full_matrices=False)[2][:ideal_rank]
    else:
        vectors = svds(normalised, k=ideal_rank, solver="arpack", random_state=seed)[2]
    ideal = (inverse_sqrt(item_degree)[:, None] * (vectors.T @ vectors)) * np.sqrt(item_degree)[None, :]
    return linear + ideal_weight * ideal


class GFCF(ItemItemRecommender):
    @staticmethod
    def check_config(config):
        weight, rank = config["ideal_weight"], config["ideal_rank"]
        require(isinstance(weight, (int, float)) and weight >= 0, "ideal_weight", weight, "must be a number >= 0")
        require(is_int(rank) and rank >= 1, "ideal_rank", rank, "must be an integer >= 1")

    def __init__(self, config, dataset):
        self.ideal_weight, self.ideal_rank, self.seed = config["ideal_weight"], config["ideal_rank"], config["seed"]
        super().__init__(config, dataset)

    def item_item(self, interactions):
        return gfcf_filter(interactions, self.ideal_weight, self.ideal_rank, self.seed)
