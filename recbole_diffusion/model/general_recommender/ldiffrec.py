r"""LDiffRec (L-DiffRec)
################################################

Reference:
    Wenjie Wang, Yiyan Xu, Fuli Feng, Xinyu Lin, Xiangnan He, Tat-Seng Chua.
    "Diffusion Recommender Model." SIGIR 2023, Sec. 3.4 (L-DiffRec).
    Code: https://github.com/YiyanXu/DiffRec (folder ``L-DiffRec/``).

L-DiffRec runs DiffRec's diffusion in a low-dimensional latent space instead of over the n-item
interaction vector:

1. **Item clustering.** Items are partitioned into C = ``n_cate`` clusters by k-means over item
   embeddings; the interaction vector splits into per-cluster parts x_0 = [x_0^1, ..., x_0^C].
2. **Encode** (Eq. (14)): one variational encoder per cluster, q_phi_c(z^c | x_0^c) =
   N(mu_c, diag(exp(logvar_c))); the latent z_0 = [z^1, ..., z^C] concatenates them (the
   reparameterisation z = mu + exp(logvar/2) * eps with ``reparam`` while training, z = mu
   otherwise). Cluster c's layer sizes are the ``in_dims`` sizes times |cluster c| / n (integer
   part, at least 1), the last cluster taking what remains, so they add up to ``in_dims``.
3. **Latent diffusion**: the forward process q(z_t | z_0) (Eq. (2)-(3)) and the denoiser
   f_theta(z_t, t) (:class:`~recbole_diffusion.model.layers.MLPDenoiser`) predicting z_0, with
   DiffRec's loss (Eq. (11), SNR(t-1) - SNR(t) weights with ``reweight``) and timestep importance
   sampling (Eq. (13)), all from the shared :class:`~recbole_diffusion.model.diffusion.GaussianDiffusion`.
4. **Decode** (Eq. (15)): the predicted ẑ_0 is decoded into item scores, p_psi(x_0 | ẑ_0), with
   the multinomial log-likelihood of Mult-VAE as reconstruction loss.

The loss of a batch, as the authors' ``main.py`` computes it::

    L_vae  = -mean_u sum_i log softmax(decode(ẑ_0))_i * x̃_0,i  +  beta * KL(q(z_0 | x_0) || N(0, I))
    loss   = lambda * L_diff + L_vae         (reweight: True)
    loss   = L_diff + lambda * L_vae         (reweight: False)

with the two annealed weights
    lambda = max((1 - e / anneal_steps) * lamda, anneal_cap)       e = epochs trained so far
    beta   = min(vae_anneal_cap, b / vae_anneal_steps)              b = batches trained so far
(``anneal_steps = 0``: lambda = max(lamda, anneal_cap); ``vae_anneal_steps = 0``:
beta = vae_anneal_cap). As in the authors' code lambda is a *decaying* weight whose floor is
``anneal_cap``, the epoch counter e moves once per epoch (the plugin's LDiffRecTrainer calls
:meth:`LDiffRec.end_train_epoch`) and the batch counter b once per training batch. Both counters
are buffers: saved in checkpoints, restored on resume (with a trainer that does not call
``end_train_epoch``, lambda stays at its initial value). x̃_0 is the encoder's *input after its
dropout*, the authors' reconstruction target.

Inference (the authors' ``inference.py``): encode the history (z = mu, no dropout), optionally
noise it for T' = ``sampling_steps`` steps, run the T reverse steps from it (posterior means, or
ancestral sampling with ``sampling_noise``; or, beyond the paper, ``inference_steps`` strided DDIM
steps as DiffRec does), decode; the scores are put back into item-id order
(``full_sort_predict``; ``predict`` gathers the requested items from them).

Layer-size conventions of the authors' code, kept:
    - ``in_dims`` lists the encoder sizes from the latent outwards: ``[300]`` is a one-layer
      encoder n_c -> 2*300_c (mean and log-variance, 300 latent dims in all); ``[300, 1000]`` is
      n_c -> 1000_c -> 2*300_c. The activation ``ae_act_func`` follows every encoder layer, the last
      one included (as in the authors' code: mu and log-variance pass through it).
    - ``out_dims: []`` (the authors' default) is a single linear decoder from the whole latent
      (sum of the clusters' latents) to all n items -- not one decoder per cluster;
      ``out_dims`` non-empty builds one decoder per cluster, latent_c -> out_dims_c ... -> n_c
      with ``ae_act_func`` between layers (none after the last).
    - Weights are Xavier-normal, biases zero (autoencoder and denoiser alike).
    - AdamW with two learning rates: ``lr1`` / ``wd1`` for the autoencoder, ``lr2`` / ``wd2`` for
      the denoiser (one AdamW with two parameter groups, which steps exactly like the authors'
      two AdamW optimisers; see ``LDiffRecTrainer``).

Item embeddings for the clustering:
    - ``item_emb_path``: a ``.npy`` array of shape (number of original item ids, d) whose row i is
      the item with (integer) token i, e.g. the authors' ``item_emb.npy`` (pre-trained LightGCN);
    - otherwise (the plugin's default) the rank-``item_emb_size`` truncated SVD of the *training*
      user-item matrix A ≈ U_k S_k V_k^T, item embeddings V_k S_k (randomised SVD seeded with
      ``seed``). Euclidean distances between these rows equal those between the items' columns of
      the best rank-k approximation of A, so k-means groups items that are co-interacted.
    - k-means: scikit-learn ``KMeans(n_cate, random_state=seed, n_init=kmeans_n_init)``; clusters
      are numbered by their smallest item id. Construction is deterministic, so a model rebuilt
      from a checkpoint's config has the same clusters and shapes.
    - The assignment is the buffer ``cluster_assignment`` (one entry per internal item id, -1 for
      the padding item 0, which belongs to no cluster and scores -inf). Loading a checkpoint whose
      assignment differs from the rebuilt one: with the same cluster sizes (hence the same module
      shapes) the checkpoint's assignment is taken over, since its weights were trained with it;
      with different sizes loading stops with an error saying so.

Deliberate deviations from the authors' code:
    - Default item embeddings: seeded truncated SVD of the training matrix when ``item_emb_path``
      is not given (the authors require a pre-trained LightGCN ``item_emb.npy``).
    - k-means: scikit-learn's seeded k-means++ with ``kmeans_n_init`` restarts instead of
      ``kmeans_pytorch`` (one random initialisation, unseeded, re-run at every construction), and
      a canonical cluster numbering. The authors' ``n_cate == 1`` needs no embeddings, nor here.
    - With ``out_dims`` non-empty and ``n_cate > 1`` the authors' per-cluster decoders mirror the
      encoder (their sizes come from ``in_dims``; the values of ``out_dims`` are ignored); here the
      per-cluster decoders use ``out_dims`` split by cluster size like the encoder. Both agree
      whenever ``out_dims`` equals ``in_dims[1:]`` (a symmetric autoencoder).
    - ``reweight: False``: the authors' L-DiffRec diffusion fails there (an unset variable); here
      the unweighted MSE is the diffusion loss, as in DiffRec.
    - The denoiser is the plugin's MLPDenoiser (the authors' DNN: same layers, tanh only, same
      dropout-then-concatenate order); its biases are zeroed as the L-DiffRec code initialises them.
    - The weight decay is AdamW's decoupled one per parameter group, as the authors'; RecBole's
      ``learning_rate`` / ``weight_decay`` are not used (``lr1``, ``lr2``, ``wd1``, ``wd2`` are).
    - ``noise_scale`` must be > 0 (the authors' noise-free branch is a plain autoencoder), as in DiffRec.
    - Schedules, importance-sampling history and the two annealing counters are buffers
      (RecBole's built-in LDiffRec keeps the counters as plain attributes, lost on resume, and
      increments lambda's counter per batch instead of per epoch).
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole.model.abstract_recommender import GeneralRecommender

from recbole_diffusion.model.general_recommender.diffrec import DiffRec, build_diffusion, check_diffusion_config
from recbole_diffusion.model.layers import MLPDenoiser
from recbole_diffusion.utils.checks import ConfigError, is_int, require, require_choice

AE_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


# ----- item clustering -------------------------------------------------------------------------
def split_dims(cluster_sizes, dims):
    """Per-cluster layer sizes proportional to cluster size (the authors' rule).

    Cluster c < C-1 gets ``max(int(n_c / n * d), 1)`` of each size d; the last cluster gets what
    remains, so the sizes of each layer add up to ``dims``. Raises ConfigError if the last cluster
    would get less than one unit.
    """
    n = sum(cluster_sizes)
    per_cluster = []
    for c, size in enumerate(cluster_sizes):
        if c < len(cluster_sizes) - 1:
            per_cluster.append([max(int(size / n * d), 1) for d in dims])
        else:
            per_cluster.append([d - sum(prev[j] for prev in per_cluster) for j, d in enumerate(dims)])
    if any(d < 1 for d in per_cluster[-1]):
        raise ConfigError(
            f"layer sizes {list(dims)} cannot be split over {len(cluster_sizes)} clusters of sizes "
            f"{list(cluster_sizes)} (every cluster needs at least one unit per layer): use larger "
            f"in_dims / out_dims or a smaller n_cate"
        )
    return per_cluster


def svd_item_embeddings(dataset, size, seed):
    """Rows V_k S_k of the seeded rank-``size`` truncated SVD of the training user-item matrix.

    Row i-1 is internal item i (the padding item 0 is dropped).
    """
    from sklearn.utils.extmath import randomized_svd

    matrix = dataset.inter_matrix(form="csr").astype(np.float64)[:, 1:]
    rank = max(1, min(size, *matrix.shape))
    _, singular, vt = randomized_svd(matrix, rank, random_state=seed)
    return vt.T * singular


def file_item_embeddings(dataset, path):
    """Rows of the ``.npy`` file at ``path`` for internal items 1..n (row = integer item token)."""
    try:
        table = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001  (any reason numpy cannot read it)
        raise ConfigError(f"config key 'item_emb_path' = {path!r}: not a readable .npy array ({error})") from None
    if table.ndim != 2 or table.shape[1] < 1 or not np.issubdtype(table.dtype, np.number):
        raise ConfigError(
            f"config key 'item_emb_path' = {path!r}: expected a numeric array of shape "
            f"(number of item ids, embedding size), got {table.dtype} {table.shape}"
        )
    tokens = dataset.id2token(dataset.iid_field, np.arange(1, dataset.item_num))
    rows = np.empty(len(tokens), dtype=np.int64)
    for k, token in enumerate(tokens):
        try:
            rows[k] = int(token)
        except (TypeError, ValueError):
            raise ConfigError(
                f"config key 'item_emb_path' = {path!r}: item token {str(token)!r} is not an integer, "
                f"so it names no row of the embedding file"
            ) from None
    bad = (rows < 0) | (rows >= len(table))
    if bad.any():
        raise ConfigError(
            f"config key 'item_emb_path' = {path!r}: the file has {len(table)} rows, but item token "
            f"{str(tokens[np.argmax(bad)])!r} needs row {rows[np.argmax(bad)]} (row i must be the item with token i)"
        )
    embeddings = table[rows].astype(np.float64)
    if not np.isfinite(embeddings).all():
        raise ConfigError(f"config key 'item_emb_path' = {path!r}: the embeddings of the dataset's items are not all finite")
    return embeddings


def kmeans_clusters(embeddings, n_clusters, seed, n_init=10):
    """Seeded k-means labels, clusters numbered by their first (smallest-id) item."""
    from sklearn.cluster import KMeans

    distinct = len(np.unique(embeddings, axis=0))
    if distinct < n_clusters:
        raise ConfigError(
            f"config key 'n_cate' = {n_clusters}: the item embeddings have only {distinct} distinct "
            f"rows, too few for {n_clusters} non-empty clusters"
        )
    labels = KMeans(n_clusters=n_clusters, random_state=seed, n_init=n_init).fit_predict(embeddings)
    _, first = np.unique(labels, return_index=True)
    if len(first) < n_clusters:
        raise ConfigError(f"config key 'n_cate' = {n_clusters}: k-means left a cluster empty")
    rename = np.empty(n_clusters, dtype=np.int64)
    rename[np.unique(labels)[np.argsort(first)]] = np.arange(n_clusters)
    return rename[labels]


def cluster_sizes(assignment, n_clusters):
    """Items per cluster of an assignment (padding entries, -1, excluded)."""
    return torch.bincount(assignment[assignment >= 0], minlength=n_clusters).tolist()


# ----- the clustered variational autoencoder ------------------------------------------------------
def _mlp(sizes, activation, last_activation):
    layers = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), AE_ACTIVATIONS[activation]()]
    if not last_activation:
        layers.pop()
    return nn.Sequential(*layers)


def multinomial_nll(logits, target):
    """-mean_u sum_i log softmax(logits)_ui * target_ui, Mult-VAE's reconstruction loss."""
    return -(F.log_softmax(logits, dim=1) * target).sum(1).mean()


class ClusteredVAE(nn.Module):
    """One variational encoder per item cluster, latents concatenated; decoder(s) back to items.

    Works on interaction vectors whose columns are in *cluster order* (cluster 0's items, then
    cluster 1's, ...), of the sizes ``cluster_sizes``. ``in_dims`` / ``out_dims`` as in the
    authors' code (see the module docstring): the latent size is ``in_dims[0]``.
    """

    def __init__(self, cluster_sizes, in_dims, out_dims, act_func="tanh", dropout=0.1, reparam=True):
        super().__init__()
        self.cluster_sizes = list(cluster_sizes)
        self.reparam = reparam
        self.dropout = nn.Dropout(dropout)
        encoder_dims = split_dims(self.cluster_sizes, list(in_dims)[::-1])  # outer layer first
        self.latent_sizes = [dims[-1] for dims in encoder_dims]
        self.encoders = nn.ModuleList(
            _mlp([size] + dims[:-1] + [2 * dims[-1]], act_func, last_activation=True)
            for size, dims in zip(self.cluster_sizes, encoder_dims)
        )
        self.shared_decoder = len(out_dims) == 0
        if self.shared_decoder:
            self.decoders = nn.ModuleList([nn.Linear(sum(self.latent_sizes), sum(self.cluster_sizes))])
        else:
            decoder_dims = split_dims(self.cluster_sizes, list(out_dims))
            self.decoders = nn.ModuleList(
                _mlp([latent] + dims + [size], act_func, last_activation=False)
                for latent, dims, size in zip(self.latent_sizes, decoder_dims, self.cluster_sizes)
            )
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def latent_size(self):
        return sum(self.latent_sizes)

    def encode(self, x):
        """(x after dropout, latent z, KL(q(z | x) || N(0, I)) averaged over the batch)."""
        x = self.dropout(x)
        mus, logvars = [], []
        for encoder, part, latent in zip(self.encoders, x.split(self.cluster_sizes, dim=1), self.latent_sizes):
            hidden = encoder(part)
            mus.append(hidden[:, :latent])
            logvars.append(hidden[:, latent:])
        mu, logvar = torch.cat(mus, dim=1), torch.cat(logvars, dim=1)
        if self.training and self.reparam:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            z = mu
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return x, z, kl

    def decode(self, z):
        """Item logits in cluster order."""
        if self.shared_decoder:
            return self.decoders[0](z)
        return torch.cat([decoder(part) for decoder, part in zip(self.decoders, z.split(self.latent_sizes, dim=1))], dim=1)


# ----- the model ---------------------------------------------------------------------------------
def _require_dims(config, key, n_cate, allow_empty):
    dims = config[key]
    ok = isinstance(dims, (list, tuple)) and all(is_int(d) and d >= 1 for d in dims)
    require(ok and (allow_empty or len(dims) > 0), key, dims, "must be a " + ("" if allow_empty else "non-empty ") + "list of positive integers")
    require(all(d >= n_cate for d in dims), key, dims, f"every size must be at least n_cate = {n_cate} (one unit per cluster)")


class LDiffRec(DiffRec):
    r"""DiffRec in the latent space of per-cluster variational encoders (L-DiffRec)."""

    @staticmethod
    def check_config(config):
        check_diffusion_config(config)
        n_cate = config["n_cate"]
        require(is_int(n_cate) and n_cate >= 1, "n_cate", n_cate, "must be an integer >= 1")
        _require_dims(config, "in_dims", n_cate, allow_empty=False)
        _require_dims(config, "out_dims", n_cate, allow_empty=True)
        require_choice(config, "ae_act_func", tuple(AE_ACTIVATIONS))
        require(0 <= config["ae_dropout"] < 1, "ae_dropout", config["ae_dropout"], "must be in [0, 1)")
        require(config["lamda"] >= 0, "lamda", config["lamda"], "must be >= 0")
        require(config["anneal_cap"] >= 0, "anneal_cap", config["anneal_cap"], "must be >= 0")
        require(config["vae_anneal_cap"] >= 0, "vae_anneal_cap", config["vae_anneal_cap"], "must be >= 0")
        for key in ("anneal_steps", "vae_anneal_steps"):
            require(isinstance(config[key], int) and config[key] >= 0, key, config[key], "must be an integer >= 0")
        for key in ("lr1", "lr2"):
            require(isinstance(config[key], (int, float)) and config[key] > 0, key, config[key], "must be a number > 0")
        for key in ("wd1", "wd2"):
            require(isinstance(config[key], (int, float)) and config[key] >= 0, key, config[key], "must be a number >= 0")
        path = config["item_emb_path"]
        require(path is None or isinstance(path, str) and os.path.isfile(path), "item_emb_path", path,
                "no such file (give a .npy array, or None for SVD embeddings of the training matrix)")
        for key in ("item_emb_size", "kmeans_n_init"):
            require(isinstance(config[key], int) and config[key] >= 1, key, config[key], "must be an integer >= 1")

    def __init__(self, config, dataset):
        # GeneralRecommender's, not DiffRec's: DiffRec would build an n_items-wide denoiser.
        GeneralRecommender.__init__(self, config, dataset)
        self.check_config(config)
        self.sampling_steps = config["sampling_steps"]
        self.inference_steps = config["inference_steps"]
        self.sampling_noise = config["sampling_noise"]
        self.reweight = config["reweight"]
        self.lamda = config["lamda"]
        self.anneal_cap = config["anneal_cap"]
        self.anneal_steps = config["anneal_steps"]
        self.vae_anneal_cap = config["vae_anneal_cap"]
        self.vae_anneal_steps = config["vae_anneal_steps"]
        self.n_cate = config["n_cate"]
        n_real_items = self.n_items - 1
        require(
            self.n_cate <= n_real_items, "n_cate", self.n_cate, f"must be at most the number of items ({n_real_items})"
        )
        self.build_histroy_items(dataset)

        assignment = torch.full((self.n_items,), -1, dtype=torch.long)
        assignment[1:] = torch.from_numpy(self.cluster_items(config, dataset))
        self.register_buffer("cluster_assignment", assignment)
        self.register_buffer("item_order", torch.empty(n_real_items, dtype=torch.long), persistent=False)
        self._refresh_item_order()
        # Annealing counters of the loss weights: epochs (lambda) and batches (beta) trained so far.
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("update_count_vae", torch.zeros((), dtype=torch.long))

        self.autoencoder = ClusteredVAE(
            cluster_sizes(assignment, self.n_cate),
            config["in_dims"],
            config["out_dims"],
            config["ae_act_func"],
            config["ae_dropout"],
            config["reparam"],
        )
        self.diffusion = build_diffusion(config)
        self.denoiser = MLPDenoiser(
            self.autoencoder.latent_size, config["dims_dnn"], config["embedding_size"], config["dropout"], config["norm"]
        )
        for module in self.denoiser.modules():
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)  # the L-DiffRec code initialises the DNN's biases to 0

    # ----- clustering ---------------------------------------------------------------------------
    @staticmethod
    def cluster_items(config, dataset):
        """Cluster (0..n_cate-1) of each internal item 1..n, deterministic for a config and split."""
        n_cate = config["n_cate"]
        n_real_items = dataset.item_num - 1
        if n_cate == 1:
            return np.zeros(n_real_items, dtype=np.int64)
        path = config["item_emb_path"]
        if path is None:
            embeddings = svd_item_embeddings(dataset, config["item_emb_size"], config["seed"])
        else:
            embeddings = file_item_embeddings(dataset, path)
        return kmeans_clusters(embeddings, n_cate, config["seed"], config["kmeans_n_init"])

    def _refresh_item_order(self):
        """Item ids in cluster order (stable within a cluster), from ``cluster_assignment``."""
        order = torch.argsort(self.cluster_assignment[1:], stable=True) + 1
        self.item_order.copy_(order)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        saved = state_dict.get("cluster_assignment")
        if saved is not None and not torch.equal(saved.cpu(), self.cluster_assignment.cpu()):
            ours = cluster_sizes(self.cluster_assignment.cpu(), self.n_cate)
            if saved.shape != self.cluster_assignment.shape or cluster_sizes(saved.cpu(), self.n_cate) != ours:
                theirs = cluster_sizes(saved.cpu(), self.n_cate) if saved.dim() == 1 else "?"
                raise RuntimeError(
                    f"{type(self).__name__}: the checkpoint's item clusters (sizes {theirs}) differ from the "
                    f"ones rebuilt from this config and dataset (sizes {ours}), so its weights do not fit: "
                    f"load it with the checkpoint's own config (n_cate, item_emb_path, item_emb_size, "
                    f"kmeans_n_init, seed) and the same dataset split"
                )
            self.logger.warning(
                f"{type(self).__name__}: the checkpoint's item clusters differ from the rebuilt ones (same sizes); "
                f"using the checkpoint's, which its weights were trained with"
            )
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._refresh_item_order()
        return result

    # ----- loss weights ---------------------------------------------------------------------------
    def diffusion_weight(self):
        """lambda: ``lamda`` decaying linearly per epoch to the floor ``anneal_cap`` (a 0-d tensor
        computed on the counter's device: no host synchronisation per batch)."""
        if self.anneal_steps > 0:
            return ((1.0 - self.update_count / self.anneal_steps) * self.lamda).clamp(min=self.anneal_cap)
        return max(self.lamda, self.anneal_cap)

    def kl_weight(self):
        """beta: the KL weight, rising linearly per batch to ``vae_anneal_cap`` (a 0-d tensor, as above)."""
        if self.vae_anneal_steps > 0:
            return (self.update_count_vae / self.vae_anneal_steps).clamp(max=self.vae_anneal_cap)
        return self.vae_anneal_cap

    def end_train_epoch(self):
        """Called by the trainer after each training epoch: advances lambda's annealing."""
        self.update_count += 1

    def parameter_groups(self):
        """{'autoencoder': params (lr1, wd1), 'denoiser': params (lr2, wd2)} for the optimiser."""
        return {"autoencoder": list(self.autoencoder.parameters()), "denoiser": list(self.denoiser.parameters())}

    # ----- training and inference -----------------------------------------------------------------
    def to_clusters(self, x):
        """[batch, n_items] in item-id order -> [batch, n] in cluster order (padding dropped)."""
        return x.index_select(1, self.item_order)

    def to_items(self, scores):
        """[batch, n] in cluster order -> [batch, n_items] in item-id order, -inf for the padding item."""
        out = scores.new_full((scores.shape[0], self.n_items), float("-inf"))
        out[:, self.item_order] = scores
        return out

    def calculate_loss(self, interaction):
        x_cate, z_start, kl = self.autoencoder.encode(self.to_clusters(self.interaction_vectors(interaction)))
        seen = {}

        def denoise(z_t, t):
            seen.update(z_t=z_t, t=t, output=self.denoiser(z_t, t))
            return seen["output"]

        diffusion_loss = self.diffusion.training_loss(denoise, z_start, reweight=self.reweight).mean()
        z_pred = self.diffusion.predict_start(seen["output"], seen["z_t"], seen["t"])
        vae_loss = multinomial_nll(self.autoencoder.decode(z_pred), x_cate) + self.kl_weight() * kl
        lamda = self.diffusion_weight()
        loss = lamda * diffusion_loss + vae_loss if self.reweight else diffusion_loss + lamda * vae_loss
        if self.training:
            self.update_count_vae += 1
        return loss

    def full_sort_predict(self, interaction):
        _, z, _ = self.autoencoder.encode(self.to_clusters(self.interaction_vectors(interaction)))
        return self.to_items(self.autoencoder.decode(self.generate(z)))
