r"""HPMN
################################################

Reference:
    Kan Ren, Jiarui Qin, Yuchen Fang, Weinan Zhang, Lei Zheng, Weijie Bian, Guorui Zhou, Jian Xu,
    Yong Yu, Xiaoqiang Zhu, Kun Gai. "Lifelong Sequential Modeling with Personalized Memorization
    for User Response Prediction." SIGIR 2019.
    Code (TensorFlow): https://github.com/alimamarankgroup/HPMN (``code/hpmn.py``)

Task: click-through-rate prediction in RecBole's DIN setting: a row is (a user's behaviour sequence
v_1..v_T, a target item v, a 0/1 label); the model outputs P(click), trained with log loss.

What is implemented (notation of the paper; D layers, slot size d):

- Hierarchical periodic memory writing. Memory M = [m^1; ...; m^D], m^j in R^d, all zeros before
  the first behaviour. At the i-th behaviour (i = 1, 2, ..., counted from the first item of the
  history) layer j, of period t^j (``memory_periods``), is written only when i mod t^j = 0::

      m^j_i = GRU^j(m^{j-1}_i, m^j_{i-1})   if i mod t^j = 0,       m^0_i = v_i (item embedding)
      m^j_i = m^j_{i-1}                     otherwise

  i.e. layer 1 reads the behaviour embedding, layer j > 1 reads the memory the layer below holds
  *after* step i (for nested periods, the state it has just written at that same step). Each
  layer has its own GRU. Positions past ``item_length`` (RecBole's right padding) write nothing.
- Attentional memory reading with the target embedding v as query::

      q_0 = W_q v,   w^h_j = softmax_j E(q_{h-1}, m^j),   r_h = sum_j w^h_j m^j,   q_h = H q_{h-1} + r_h

  for h = 1..``read_hops``; E is the authors' attention MLP over [q, m, q - m, q * m]
  (``attention_hidden_size``, ReLU). With one hop (the default) this is the paper's single read.
- Prediction: y = sigmoid(f([r, v])), f = Norm -> (Linear -> ELU -> Dropout) x len(
  ``mlp_hidden_size``) -> Linear, as in the authors' ``build_fc_net`` (r is the last hop's read).
  Norm (``prediction_norm``): ``affine``, the authors' batch normalisation as their code runs it
  (``training=False`` in training too: moving statistics that never move, so a learned per-feature
  scale and shift), or ``batch``, real BatchNorm with batch statistics (measured beside it in
  ``benchmarks/README.md``).
- Loss: log loss + ``memory_cov_weight`` * L_cov, the memory covariance regulariser of the paper
  (DeCov over the D slots of each user)::

      C = 1/d (M - M̄)(M - M̄)^T   (M̄: each slot's mean over its d units),
      L_cov = 1/2 (||C||_F^2 - ||diag(C)||_2^2),  averaged over the batch.

- Serving: :meth:`HPMN.init_memory` (zeros, [B, D, d]), :meth:`HPMN.update_memory` (one new
  behaviour at 1-based position ``step_index``: O(D) GRU steps, the history is not read again) and
  :meth:`HPMN.score` (P(click) of target items). The full pass (:meth:`HPMN.memory`) computes the
  same memories (``tests/test_hpmn.py`` checks it).

Where the paper and the authors' code disagree, and what is done here:

- What the memory reads: the code appends the candidate item (the clicked one or the sampled
  negative) as the last element of the sequence the GRUs read, so its memory depends on the
  target. In the paper the memory summarises the *history* and the target only queries it; that
  is done here (it is also what makes incremental serving possible).
- Padding and period alignment: the code front-pads every sequence to a fixed length and runs the
  GRUs over the zero-embedded padding too, with periods counted from the start of the padded
  window. Here padding never writes and step i counts the user's behaviours (the paper's writing
  rule); in RecBole a history is the last ``MAX_ITEM_LIST_LENGTH`` behaviours, so i counts from
  the first of those.
- Periods: the code gives each layer a stride relative to the layer below (its defaults
  [2, 2, 5, 5, 1] give absolute periods 1, 2, 4, ...); ``memory_periods`` are absolute periods
  t^j, the paper's notation (powers of two by default). Non-nested periods are allowed and keep
  the rule above (layer j reads the memory the layer below holds at step i).
- Covariance regulariser: the code adds the (unsquared) Frobenius norm of the off-diagonal
  covariance, summed over the batch, weight 1e-5; here the paper's 1/2 squared form, averaged over
  the batch (so ``memory_cov_weight`` is on the scale of the per-row log loss).
- Reading: the code reads with 3 hops and feeds the final *query* q_H to the MLP; the paper has a
  single attentional read fed with v to the predictor. Default ``read_hops: 1`` and the MLP sees
  [r_H, v]; more hops follow the code's query update.
- Side information: the code concatenates user-id and category embeddings to every behaviour;
  here behaviours and target are item-id embeddings (as RecBole's ml-100k CTR split has them).
- Training details of the code not reproduced: gradient clipping by value (RecBole offers
  ``clip_grad_norm``), keep-prob 0.5 is ``dropout_prob: 0.5``.

Efficiency: the full pass runs each layer's GRU over that layer's whole input sequence (the
behaviour embeddings for layer 1, the strided held states of the layer below for the others, as
the authors' code does), O(B * L * d) activations and no O(L^2) tensor; rows that share a history
(the positive and its sampled negative in training, the 101 candidates of a user in ``uni100``
evaluation) share one memory computation.
"""

import torch
import torch.nn as nn
from torch.nn.init import constant_, xavier_normal_

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_diffusion.utils.checks import is_int, require, require_choice

VALUE_METRICS = ("auc", "logloss", "mae", "rmse")
PREDICTION_NORMS = ("affine", "batch")


def memory_covariance_loss(memory):
    """L_cov of each row: 1/2 (||C||_F^2 - ||diag C||^2), C = (M - M̄)(M - M̄)^T / d; memory [B, D, d] -> [B]."""
    centred = memory - memory.mean(dim=-1, keepdim=True)
    cov = centred @ centred.transpose(1, 2) / memory.shape[-1]
    return 0.5 * (cov.pow(2).sum(dim=(1, 2)) - torch.diagonal(cov, dim1=1, dim2=2).pow(2).sum(dim=1))


class FeatureAffine(nn.Module):
    """x * gamma + beta per feature: batch normalisation whose statistics stay at 0 and 1.

    TensorFlow's ``batch_normalization(training=False)`` with untouched moving averages computes
    gamma * x / sqrt(1 + eps) + beta; the constant 1 / sqrt(1 + eps) is absorbed into gamma.
    """

    def __init__(self, width):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        return x * self.weight + self.bias


class HPMN(SequentialRecommender):
    r"""Hierarchical Periodic Memory Network for CTR prediction over long behaviour sequences."""

    input_type = InputType.POINTWISE
    LENGTH_BUCKETS = 4  # groups of similar-length histories in a batch's memory pass (speed only)

    @staticmethod
    def check_config(config):
        layers = config["memory_layers"]
        require(is_int(layers) and layers >= 1, "memory_layers", layers, "must be an integer >= 1")
        periods = config["memory_periods"]
        require(isinstance(periods, (list, tuple)), "memory_periods", periods, "must be a list of integers >= 1")
        for period in periods:
            require(is_int(period) and period >= 1, "memory_periods", periods, "every period must be an integer >= 1")
        require(
            len(periods) == layers,
            "memory_periods",
            periods,
            f"must give one period per memory layer (memory_layers = {layers}, {len(periods)} given)",
        )
        require_choice(config, "prediction_norm", PREDICTION_NORMS)
        hops = config["read_hops"]
        require(is_int(hops) and hops >= 1, "read_hops", hops, "must be an integer >= 1")
        weight = config["memory_cov_weight"]
        require(isinstance(weight, (int, float)) and weight >= 0, "memory_cov_weight", weight, "must be a number >= 0")
        dropout = config["dropout_prob"]
        require(isinstance(dropout, (int, float)) and 0 <= dropout < 1, "dropout_prob", dropout, "must be in [0, 1)")
        for key in ("embedding_size", "hidden_size"):
            require(is_int(config[key]) and config[key] >= 1, key, config[key], "must be an integer >= 1")
        modes = config["eval_args"]["mode"]  # RecBole has made it {'valid': ..., 'test': ...}
        metrics = [metric.lower() for metric in config["metrics"]]
        kind = "value metrics " + str(config["metrics"]) if any(m in VALUE_METRICS for m in metrics) else "any metric"
        require(
            "full" not in modes.values(),
            "eval_args.mode",
            modes,
            f"HPMN scores (history, item) pairs and has no full ranking for {kind}; "
            "use a sampled or labeled mode such as uni100 (RecBole's DIN setting)",
        )

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.LABEL_FIELD = config["LABEL_FIELD"]
        self.embedding_size = config["embedding_size"]
        self.hidden_size = config["hidden_size"]
        self.periods = [int(period) for period in config["memory_periods"]]
        self.n_layers = len(self.periods)
        self.read_hops = config["read_hops"]
        self.memory_cov_weight = config["memory_cov_weight"]

        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        # One GRU per layer; nn.GRU so that a layer's whole input sequence runs in one call.
        self.layers = nn.ModuleList(
            nn.GRU(self.embedding_size if j == 0 else self.hidden_size, self.hidden_size, batch_first=True)
            for j in range(self.n_layers)
        )
        self.query = nn.Linear(self.embedding_size, self.hidden_size)
        self.hop_map = nn.Linear(self.hidden_size, self.hidden_size, bias=False)  # H of the query update
        energy, width = [], 4 * self.hidden_size
        for size in config["attention_hidden_size"]:
            energy += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.energy = nn.Sequential(*energy, nn.Linear(width, 1))
        width = self.hidden_size + self.embedding_size
        mlp = [FeatureAffine(width) if config["prediction_norm"] == "affine" else nn.BatchNorm1d(width)]
        for size in config["mlp_hidden_size"]:
            mlp += [nn.Linear(width, size), nn.ELU(), nn.Dropout(config["dropout_prob"])]
            width = size
        self.predictor = nn.Sequential(*mlp, nn.Linear(width, 1))
        self.loss = nn.BCEWithLogitsLoss()
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight.data)
            with torch.no_grad():
                module.weight[0].zero_()
        elif isinstance(module, nn.Linear):
            xavier_normal_(module.weight.data)
            if module.bias is not None:
                constant_(module.bias.data, 0)

    # ------------------------------------------------------------------ memory writing
    def init_memory(self, batch_size):
        """The memory of users with no behaviour yet: zeros, [batch_size, D, d]."""
        weight = self.query.weight
        return torch.zeros(batch_size, self.n_layers, self.hidden_size, device=weight.device, dtype=weight.dtype)

    def update_memory(self, memory, item_ids, step_index):
        """Write one new behaviour per user: O(D) GRU steps, the history is not read again.

        ``memory`` [B, D, d]; ``item_ids`` [B] (0, the padding id, writes nothing); ``step_index`` the
        1-based position i of this behaviour in each user's sequence (an int or a [B] tensor).
        Layer j is written iff i mod t^j == 0, from the item (j = 1) or the layer below's new memory.
        """
        step = torch.as_tensor(step_index, device=item_ids.device).expand_as(item_ids)
        valid = (item_ids != 0) & (step >= 1)
        below = self.item_embedding(item_ids)
        slots = []
        for j, (gru, period) in enumerate(zip(self.layers, self.periods)):
            current = memory[:, j]
            due = valid & (step % period == 0)
            # every layer's GRU cell runs and only due rows take its state: no host sync per layer
            _, written = gru(below.unsqueeze(1), current.unsqueeze(0).contiguous())
            current = torch.where(due.unsqueeze(-1), written[0], current)
            slots.append(current)
            below = current
        return torch.stack(slots, dim=1)

    def memory(self, item_seq, item_seq_len):
        """M after each row's whole history, [B, D, d] (the same as :meth:`update_memory` step by step).

        Layer j's inputs are its due steps i = t^j, 2 t^j, ... of the window; it runs them as one
        GRU sequence and each row keeps the state after its own last due step (item_length // t^j
        writes). The padding after a row's last item only feeds states that are never kept.
        """
        batch, length = item_seq.shape
        rows = torch.arange(batch, device=item_seq.device)
        embedded = self.item_embedding(item_seq)
        zeros = self.init_memory(batch)[:, 0].unsqueeze(1)  # [B, 1, d]: a layer's state before its first write
        held_below, period_below = None, 1  # the states the layer below holds, after each of its writes
        slots = []
        for j, (gru, period) in enumerate(zip(self.layers, self.periods)):
            writes = length // period
            if writes == 0:  # the window is shorter than the period: never written
                states = zeros[:, :0]
            else:
                due = torch.arange(1, writes + 1, device=item_seq.device) * period  # 1-based steps i
                if j == 0:
                    inputs = embedded[:, due - 1]
                else:  # the layer below after step i has made i // t^{j-1} writes (0: its zero state)
                    inputs = held_below[:, due // period_below]
                states, _ = gru(inputs)
            held = torch.cat([zeros, states], dim=1)  # held[:, n] = state after n writes
            slots.append(held[rows, torch.div(item_seq_len, period, rounding_mode="floor")])
            held_below, period_below = held, period
        return torch.stack(slots, dim=1)

    # ------------------------------------------------------------------ memory reading
    def read(self, memory, target_emb):
        """The attentional read r of the last hop, [B, d], and its slot weights [B, D]."""
        query = self.query(target_emb)
        for _ in range(self.read_hops):
            expanded = query.unsqueeze(1).expand_as(memory)
            energy = self.energy(torch.cat([expanded, memory, expanded - memory, expanded * memory], dim=-1))
            weights = torch.softmax(energy.squeeze(-1), dim=-1)
            read = (weights.unsqueeze(-1) * memory).sum(dim=1)
            query = self.hop_map(query) + read
        return read, weights

    def logits(self, memory, target_items):
        target_emb = self.item_embedding(target_items)
        read, _ = self.read(memory, target_emb)
        return self.predictor(torch.cat([read, target_emb], dim=-1)).squeeze(-1)

    def score(self, memory, target_items):
        """P(click) of each user's target item given the user's memory: [B, D, d], [B] -> [B]."""
        return torch.sigmoid(self.logits(memory, target_items))

    # ------------------------------------------------------------------ RecBole interface
    def _row_memory(self, interaction):
        """Memory of every row, [B, D, d], computed once per distinct history.

        The distinct histories run shortest first in up to ``LENGTH_BUCKETS`` groups, each cut to
        its own longest history (the cut-off part is padding for all of them). Finding the distinct
        histories and the cut reads the batch on the host (one synchronisation on a GPU, on purpose:
        it decides tensor shapes, and saves most of the GRU work on short histories).
        """
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        keys = torch.cat([item_seq_len.unsqueeze(1), item_seq], dim=1)
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)  # sorted: by length first
        lengths, histories = distinct[:, 0], distinct[:, 1:]
        buckets = min(self.LENGTH_BUCKETS, max(1, len(distinct) // 64))
        memory = torch.cat(
            [
                self.memory(seq[:, : max(1, int(length.max()))], length)
                for seq, length in zip(histories.tensor_split(buckets), lengths.tensor_split(buckets))
            ]
        )
        return memory[inverse]

    def forward(self, interaction):
        memory = self._row_memory(interaction)
        return self.logits(memory, interaction[self.POS_ITEM_ID]), memory

    def calculate_loss(self, interaction):
        logits, memory = self.forward(interaction)
        loss = self.loss(logits, interaction[self.LABEL_FIELD].float())
        if self.memory_cov_weight > 0:
            loss = loss + self.memory_cov_weight * memory_covariance_loss(memory).mean()
        return loss

    def predict(self, interaction):
        logits, _ = self.forward(interaction)
        return torch.sigmoid(logits)
