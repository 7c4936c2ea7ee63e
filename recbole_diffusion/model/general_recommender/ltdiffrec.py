r"""LTDiffRec (LT-DiffRec)
################################################

Reference:
    Wenjie Wang et al. "Diffusion Recommender Model." SIGIR 2023, Sec. 3.4 and 3.5 (L-DiffRec
    with T-DiffRec's temporal reweighting). Code: https://github.com/YiyanXu/DiffRec (``LT-DiffRec/``).

L-DiffRec (:class:`~recbole_diffusion.model.general_recommender.ldiffrec.LDiffRec`) on
recency-weighted interaction vectors: each user's training interactions, in chronological
order, weigh ``linspace(w_min, w_max, n)`` (Eq. (16)). The weighted vector is what the
per-cluster encoders read, the target of the VAE reconstruction and the starting point of
inference, as in the authors' LT-DiffRec code. The history is T-DiffRec's
(:meth:`TDiffRec.build_histroy_items <recbole_diffusion.model.general_recommender.tdiffrec.TDiffRec.build_histroy_items>`,
through the method resolution order LTDiffRec -> LDiffRec -> TDiffRec -> DiffRec); everything
else is LDiffRec's.

Needs the dataset's time field: ``TIME_FIELD`` unset stops at the config, a time column missing
from the loaded interactions stops when the model is built. The item clustering uses the binary
training matrix (or ``item_emb_path``), not the recency weights.
"""

from recbole_diffusion.model.general_recommender.ldiffrec import LDiffRec
from recbole_diffusion.model.general_recommender.tdiffrec import TDiffRec


class LTDiffRec(LDiffRec, TDiffRec):
    r"""L-DiffRec with interactions reweighted by recency (LT-DiffRec)."""

    @staticmethod
    def check_config(config):
        LDiffRec.check_config(config)
        TDiffRec.check_config(config)

    def __init__(self, config, dataset):
        # LDiffRec.__init__ does not run TDiffRec.__init__; its history builder reads these.
        self.w_min = config["w_min"]
        self.w_max = config["w_max"]
        super().__init__(config, dataset)
