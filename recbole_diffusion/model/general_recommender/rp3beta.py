r"""RP3beta: random walks of three steps on the user-item graph, with item popularity discounted.

Paudel, Christoffel, Mendez, Bernstein, "Updatable, Accurate, Diverse, and Scalable
Recommendations for Interactive Applications", ACM TiiS 7(1), 2017 (Section 3: P^3_alpha, and
RP^3_beta, its popularity re-ranking); the strong simple baseline of Ferrari Dacrema et al., "A
Troubling Analysis of Reproducibility and Progress in Recommender Systems Research" (TOIS 2021)
and Benigni et al., "Diffusion Recommender Models and the Illusion of Progress" (2025).

With R the binary user x item training matrix, the one-step transition probabilities are
P_ui = D_U^{-1} R (user -> item) and P_iu = D_I^{-1} R^T (item -> user). A walk item -> user ->
item, each step's probability raised to alpha, gives the item-item weights

    W_ij = sum_u (P_iu)_{iu}^alpha (P_ui)_{uj}^alpha / pop_j^beta,

pop_j the number of training users of item j; the score of item j for user u is sum_i R_ui W_ij
(the third step, from the user to the items she has). beta > 0 lowers popular items (RP^3_beta;
beta = 0 is P^3_alpha).

Deliberate choices, as in Ferrari Dacrema et al.'s implementation, which these studies used:
each row of W keeps only its ``neighbors`` largest weights (sparsification, the paper's
"top-k" of the item graph), the diagonal is zero (an item does not vote for itself in the
neighbour selection), and ``normalize_similarity`` optionally divides each row by its sum. The
defaults (alpha = 1, beta = 0.6, 200 neighbours) are ours: the paper tunes per data set; search
them (``properties/tune/RP3beta.yaml``).
"""

import numpy as np
import scipy.sparse as sp

from recbole_diffusion.model.item_item import ItemItemRecommender
from recbole_diffusion.utils.checks import is_int, require


def rp3beta_similarity(interactions, alpha, beta, neighbors, normalize=False):
    """W of RP3beta (dense float64, items x items) from a binary users x items matrix."""
    matrix = sp.csr_matrix(interactions, dtype=np.float64)
    user_degree = np.asarray(matrix.sum(axis=1)).reshape(-1)
    item_degree = np.asarray(matrix.sum(axis=0)).reshape(-1)
    inverse = lambda degree: np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)  # noqa: E731
    user_to_item = sp.diags(inverse(user_degree)) @ matrix
    item_to_user = sp.diags(inverse(item_degree)) @ matrix.T.tocsr()
    user_to_item.data **= alpha
    item_to_user.data **= alpha
    weights = (item_to_user @ user_to_item).toarray()
    weights *= np.power(item_degree, -beta, out=np.zeros_like(item_degree), where=item_degree > 0)[None, :]
    np.fill_diagonal(weights, 0.0)
    if neighbors < weights.shape[1]:
        dropped = np.argpartition(-weights, neighbors, axis=1)[:, neighbors:]
        np.put_along_axis(weights, dropped, 0.0, axis=1)
    if normalize:
        sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights


class RP3beta(ItemItemRecommender):
    @staticmethod
    def check_config(config):
        require(isinstance(config["alpha"], (int, float)) and config["alpha"] >= 0, "alpha", config["alpha"], "must be a number >= 0")
        require(isinstance(config["beta"], (int, float)) and config["beta"] >= 0, "beta", config["beta"], "must be a number >= 0")
        require(is_int(config["neighbors"]) and config["neighbors"] >= 1, "neighbors", config["neighbors"], "must be an integer >= 1")

    def __init__(self, config, dataset):
        self.alpha, self.beta, self.neighbors = config["alpha"], config["beta"], config["neighbors"]
        self.normalize = config["normalize_similarity"]
        super().__init__(config, dataset)

    def item_item(self, interactions):
        return rp3beta_similarity(interactions, self.alpha, self.beta, self.neighbors, self.normalize)
