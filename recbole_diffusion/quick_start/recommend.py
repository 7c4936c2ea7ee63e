"""Top-k recommendations (or candidate scores) from a trained checkpoint, as external tokens.

One code path for the command (``--recommend=CHECKPOINT``) and the Python API
(:func:`recommend`): :func:`iter_recommendations` yields one DataFrame per chunk of users, so the
command writes as it goes and its memory does not grow with the number of users.

- **Ranking models** (general: the DiffRec family, EASE, LightGCN ...; sequential: DreamRec,
  SASRec ...) rank every item with their ``full_sort_predict``: general models for the user as
  trained, sequential ones for the next item after the user's latest known history (the test
  split's last history and its target). Items the user interacted with are excluded: those of
  training and, unless ``keep_held_out``, of validation and test (RecBole's evaluator masks
  the training ones, and the validation ones at test time). A user with fewer than ``k`` items
  left gets the ones there are.
- **CTR models** (HPMN, DIN, FM ...: evaluated with AUC / LogLoss) score given (user, item)
  candidate rows with their ``predict`` (a click probability), the user's latest history
  attached where the model reads one. Ranking models score candidates too.
"""

import os
from logging import getLogger

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from recbole.data.interaction import Interaction
from recbole.utils import EvaluatorType

from recbole_diffusion.utils.checks import ConfigError, is_int


def recommend(checkpoint, users=None, k=10, candidates=None, keep_held_out=False, device=None, config_dict=None):
    """A DataFrame of recommendations from ``checkpoint`` (a file, or a folder: its newest
    checkpoint): ``user, rank, item, score`` (the top ``k`` of every user, or
    of ``users``, a list of external user tokens), or with ``candidates`` (a DataFrame of user and
    item tokens) ``user, item, score``, one row per candidate. ``config_dict`` overrides the
    stored config where it only changes inference (DreamRec's ``sampler`` and ``inference_steps``,
    ``eval_batch_size``)."""
    chunks = list(iter_recommendations(checkpoint, users, k, candidates, keep_held_out, device, config_dict))
    return pd.concat(chunks, ignore_index=True)


def iter_recommendations(checkpoint, users=None, k=10, candidates=None, keep_held_out=False, device=None, config_dict=None, show_progress=False):
    """:func:`recommend`, one DataFrame per chunk of ``eval_batch_size`` (user x item pairs)."""
    from recbole_diffusion.quick_start import load_data_and_model

    checkpoint = newest_checkpoint(checkpoint) if os.path.isdir(checkpoint) else checkpoint
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(checkpoint, device=device, config_dict=config_dict)
    model.eval()
    splits = [train_data] + ([] if keep_held_out else [valid_data, test_data])
    if candidates is not None:
        yield from _score_candidates(config, model, dataset, test_data, candidates, show_progress)
        return
    if config["eval_type"] == EvaluatorType.VALUE:
        raise ConfigError(
            f"checkpoint '{checkpoint}': {config['model']} predicts clicks (metrics {config['metrics']}), it does not rank "
            "all items: give the (user, item) rows to score with --candidates=FILE"
        )
    n_items = dataset.item_num - 1  # id 0 is padding
    if not (is_int(k) and 1 <= k <= n_items):
        raise ConfigError(f"--topk={k!r}: give an integer in [1, {n_items}], the number of items of dataset '{config['dataset']}'")
    uid = dataset.uid_field
    ids = _user_ids(dataset, users)
    seen = _seen_items(dataset, splits, config)
    history, positions = _latest_histories(test_data.dataset, config) if _sequential(test_data.dataset, config) else (None, None)
    per_chunk = max(1, config["eval_batch_size"] // dataset.item_num)
    for start in _chunk_starts(len(ids), per_chunk, "recommend" if show_progress else None):
        chunk = ids[start:start + per_chunk]
        if history is None:
            interaction = train_data.dataset.join(Interaction({uid: torch.from_numpy(chunk)}))
        else:
            interaction = history[torch.from_numpy(positions[chunk])]
        with torch.no_grad():
            scores = model.full_sort_predict(interaction.to(config["device"])).view(len(chunk), -1).float().cpu()
        scores[:, 0] = -torch.inf
        mask = seen[chunk].tocoo()
        scores[torch.from_numpy(mask.row).long(), torch.from_numpy(mask.col).long()] = -torch.inf
        top_scores, top_items = torch.topk(scores, k, dim=1)
        keep = torch.isfinite(top_scores)
        rows, ranks = torch.nonzero(keep, as_tuple=True)
        yield pd.DataFrame({
            "user": dataset.id2token(uid, chunk[rows.numpy()]),
            "rank": ranks.numpy() + 1,
            "item": dataset.id2token(dataset.iid_field, top_items[keep].numpy()),
            "score": top_scores[keep].numpy(),
        })


def newest_checkpoint(folder):
    """The most recently written checkpoint (``*.pth``) in a folder, e.g. a run's ``checkpoint_dir``."""
    files = [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".pth") and not name.startswith(".")]
    if not files:
        raise ConfigError(f"--recommend={folder}: the folder holds no checkpoint (*.pth)")
    newest = max(files, key=os.path.getmtime)
    getLogger().info(f"recommending with {newest}, the newest checkpoint in {folder}")
    return newest


def _sequential(split_dataset, config):
    return config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"] in split_dataset.inter_feat


def _user_ids(dataset, users):
    """Internal ids of the requested user tokens (every user by default)."""
    return np.arange(1, dataset.user_num) if users is None else _internal_ids(dataset, dataset.uid_field, users, "users")


def _internal_ids(dataset, field, tokens, what):
    """Internal ids of external tokens of ``field``; unknown tokens fail, counted and named."""
    tokens = [str(token) for token in tokens]
    known = dataset.field2token_id[field]
    unknown = [token for token in tokens if token not in known]
    if unknown:
        raise ConfigError(
            f"{len(unknown)} of {len(tokens)} {what} are not {what} of dataset '{dataset.dataset_name}' "
            f"(field {field}), e.g. {', '.join(repr(t) for t in unknown[:5])}"
        )
    return np.array([known[token] for token in tokens], dtype=np.int64)


def _seen_items(dataset, splits, config):
    """users x items (CSR) of what each user interacted with in ``splits``: the rated items, and
    for sequential data the items of each row's history too."""
    uid, iid = dataset.uid_field, dataset.iid_field
    rows, cols = [], []
    for split in splits:
        feat = split.dataset.inter_feat
        rows.append(feat[uid].numpy())
        cols.append(feat[iid].numpy())
        list_field = iid + config["LIST_SUFFIX"]
        if list_field in feat:
            lists = feat[list_field].numpy()
            users = np.repeat(feat[uid].numpy(), lists.shape[1])
            items = lists.reshape(-1)
            rows.append(users[items > 0])
            cols.append(items[items > 0])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(dataset.user_num, dataset.item_num))


def _latest_histories(split_dataset, config):
    """``(histories, positions)``: each user's latest history, the last row of the split with its
    target appended (the last ``MAX_ITEM_LIST_LENGTH`` items), as an Interaction, and
    ``positions[user]``, that user's row in it (-1: none)."""
    feat = split_dataset.inter_feat
    uid, iid = split_dataset.uid_field, split_dataset.iid_field
    list_field, length_field = iid + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    users = feat[uid].numpy()
    last = np.unique(users[::-1], return_index=True)[1]
    last = len(users) - 1 - last  # the last row of every user
    rows = feat[torch.from_numpy(np.sort(last))]
    lists, lengths, targets = rows[list_field].clone(), rows[length_field].clone(), rows[iid]
    width = lists.shape[1]
    full = lengths >= width
    lists[full] = torch.roll(lists[full], -1, dims=1)  # a full history drops its oldest item
    lengths[full] = width - 1
    lists[torch.arange(len(lists)), lengths] = targets
    positions = np.full(split_dataset.user_num, -1, dtype=np.int64)
    positions[rows[uid].numpy()] = np.arange(len(rows))
    return Interaction({uid: rows[uid], list_field: lists, length_field: lengths + 1}), positions


def _score_candidates(config, model, dataset, test_data, candidates, show_progress):
    """``predict`` of each (user, item) candidate row, with the user's latest history where the
    model reads one; unknown tokens fail, counted."""
    uid, iid = dataset.uid_field, dataset.iid_field
    users = _user_ids(dataset, list(candidates.iloc[:, 0]))
    items = _internal_ids(dataset, iid, list(candidates.iloc[:, 1]), "items")
    sequential = _sequential(test_data.dataset, config)
    history, positions = _latest_histories(test_data.dataset, config) if sequential else (None, None)
    if history is not None and (positions[users] < 0).any():
        missing = candidates.iloc[:, 0][positions[users] < 0]
        raise ConfigError(f"--candidates: {len(missing)} rows name users with no history in the test split, e.g. {missing.iloc[0]!r}")
    per_chunk = max(1, config["eval_batch_size"])
    for start in _chunk_starts(len(users), per_chunk, "score" if show_progress else None):
        chunk_users, chunk_items = users[start:start + per_chunk], items[start:start + per_chunk]
        if history is None:
            interaction = test_data.dataset.join(Interaction({uid: torch.from_numpy(chunk_users), iid: torch.from_numpy(chunk_items)}))
        else:
            interaction = history[torch.from_numpy(positions[chunk_users])]
            interaction.update(Interaction({iid: torch.from_numpy(chunk_items)}))
            interaction = test_data.dataset.join(interaction)
        with torch.no_grad():
            scores = model.predict(interaction.to(config["device"])).float().cpu().numpy()
        yield pd.DataFrame({
            "user": dataset.id2token(uid, chunk_users), "item": dataset.id2token(iid, chunk_items), "score": scores,
        })


def read_tokens(path):
    """One external user token a line (blank lines skipped)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--users={path}: no such file")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_candidates(path):
    """A CSV (or tab-separated) file of (user, item) token rows, with a header."""
    if not os.path.isfile(path):
        raise ConfigError(f"--candidates={path}: no such file")
    frame = pd.read_csv(path, sep=None, engine="python", dtype=str)
    if frame.shape[1] != 2:
        raise ConfigError(f"--candidates={path}: expected two columns (user, item), found {list(frame.columns)}")
    return frame


def write_recommendations(chunks, path):
    """Write chunks as they come: Parquet when ``path`` ends in .parquet, else CSV; through a
    temporary file, so that an interrupted run leaves no half-written output. Returns the row count."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.partial")
    rows, writer = 0, None
    try:
        for chunk in chunks:
            if path.endswith(".parquet"):
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            else:
                chunk.to_csv(tmp, mode="a" if rows else "w", header=not rows, index=False)
            rows += len(chunk)
        if writer is not None:
            writer.close()
        if not os.path.exists(tmp):  # no rows at all
            open(tmp, "w").close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    getLogger().info(f"{rows} rows written to {path}")
    return rows


def _chunk_starts(total, per_chunk, progress=None):
    """The first row of each chunk; with ``progress`` (its label), behind a progress bar."""
    starts = range(0, total, per_chunk)
    if progress is None:
        return starts
    from tqdm import tqdm

    return tqdm(starts, desc=progress, unit="chunk", total=len(starts))
