"""Benchmark: the DiffRec authors' LightGCN item embeddings against a RecBole LightGCN's, by one scorer.

The DiffRec authors' ML-1M split ships ``item_emb.npy``: the item embeddings of the LightGCN they
trained on it (L-DiffRec clusters items with them). Their user embeddings are not published, so
both item sides are scored the same way: every user is folded in by ridge regression on its
training row against the fixed item embeddings E (u = x E (E'E + lambda I)^-1, scores E u), lambda
picked by valid Recall@20 (training items masked), then tested with training and valid items
masked, as the split's protocol (Recall and NDCG at 10 and 20 over the users with test items, by
RecBole's metric code).

With a RecBole LightGCN trained on this split (``--checkpoint FILE``, or ``--runs`` a comparison's
runs.jsonl and ``--seed``: that LightGCN run's best checkpoint), the same fold-in scores its
propagated item embeddings and its layer-0 ones, and the checkpoint is also tested with its own
user embeddings, the check that this scorer reproduces RecBole's test metrics.

    python benchmarks/lightgcn_fold_in.py --split ../shared/data/diffrec-ml-1m-clean [--checkpoint FILE | --runs FILE --seed N]

Seconds on one core; the table goes to stdout with the command that made it.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

LAMBDAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # times the mean eigenvalue of E'E


def interactions(rows, shape):
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows[:, 0], rows[:, 1])), shape=shape)


def ranking_metrics(scores, masked, held_out, ks=(10, 20)):
    """{"recall@k", "ndcg@k": mean over the users with held-out items}, by RecBole's own metric code."""
    from recbole.evaluator.metrics import NDCG, Recall

    from recbole_diffusion.compat import numpy_aliases

    numpy_aliases()  # RecBole's NDCG uses np.float, which every RecBole Config sets and NumPy 2 lacks

    users = np.flatnonzero(held_out.getnnz(axis=1))
    scores = np.array(scores[users], dtype=np.float64)
    scores[masked[users].nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, : max(ks)]
    hits = np.take_along_axis(held_out[users].toarray(), top, axis=1) > 0
    counts = held_out[users].getnnz(axis=1)
    config = {"topk": list(ks), "metric_decimal_place": 4}
    result = {}
    for name, metric in (("recall", Recall), ("ndcg", NDCG)):
        per_user = metric(config).metric_info(hits, counts)
        result.update({f"{name}@{k}": float(per_user[:, k - 1].mean()) for k in ks})
    return result


def fold_in(embeddings, train, valid, test):
    """Valid Recall@20 per lambda, and the test metrics at the best lambda."""
    gram = embeddings.T @ embeddings
    scale = np.trace(gram) / len(gram)
    users = {factor: train @ embeddings @ np.linalg.inv(gram + factor * scale * np.eye(len(gram))) for factor in LAMBDAS}
    valid_recall = {factor: ranking_metrics(users[factor] @ embeddings.T, train, valid)["recall@20"] for factor in LAMBDAS}
    best = max(valid_recall, key=valid_recall.get)
    return {"lambda": best, "valid recall@20": valid_recall[best], **ranking_metrics(users[best] @ embeddings.T, train + valid, test)}


def checkpoint_embeddings(path, n_items):
    """(propagated item embeddings, layer-0 ones, the model's own scores of every user) of a
    RecBole LightGCN checkpoint, rows and columns in the split's user and item ids."""
    import torch

    import recbole_diffusion  # noqa: F401
    from recbole_diffusion.quick_start import load_data_and_model

    config, model, dataset, *_ = load_data_and_model(path, device="cpu")
    with torch.no_grad():
        users, items = (tensor.numpy() for tensor in model.forward())
    item_ids = np.array([int(token) for token in dataset.field2id_token[config["ITEM_ID_FIELD"]][1:]])
    user_ids = np.array([int(token) for token in dataset.field2id_token[config["USER_ID_FIELD"]][1:]])
    propagated, layer0 = np.zeros((n_items, items.shape[1])), np.zeros((n_items, items.shape[1]))
    propagated[item_ids], layer0[item_ids] = items[1:], model.item_embedding.weight.detach().numpy()[1:]
    own = np.zeros((user_ids.max() + 1, n_items))
    own[np.ix_(user_ids, item_ids)] = users[1:] @ items[1:].T
    return propagated, layer0, own


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", required=True, help="folder with train_list.npy, valid_list.npy, test_list.npy, item_emb.npy")
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--checkpoint", help="a RecBole LightGCN checkpoint trained on this split")
    given.add_argument("--runs", help="a comparison's runs.jsonl: the best checkpoint of its LightGCN run of --seed")
    parser.add_argument("--seed", type=int, help="with --runs: which LightGCN run")
    args = parser.parse_args(argv)
    if args.runs:
        from recbole_diffusion.quick_start.report import read_jsonl

        found = [run for run in read_jsonl(args.runs) if run["model"] == "LightGCN" and run["seed"] == args.seed and "error" not in run]
        if not found:
            parser.error(f"--runs={args.runs}: no finished LightGCN run of --seed={args.seed}")
        args.checkpoint = found[-1]["saved_model_file"]
    split = Path(args.split)
    rows = {name: np.load(split / f"{name}_list.npy") for name in ("train", "valid", "test")}
    authors = np.load(split / "item_emb.npy").astype(np.float64)
    shape = (max(int(r[:, 0].max()) for r in rows.values()) + 1, len(authors))
    train, valid, test = (interactions(rows[name], shape) for name in ("train", "valid", "test"))
    table = [("the DiffRec authors' LightGCN (item_emb.npy), users folded in", fold_in(authors, train, valid, test))]
    if args.checkpoint:
        propagated, layer0, own = checkpoint_embeddings(args.checkpoint, shape[1])
        table += [
            ("RecBole LightGCN checkpoint, propagated item embeddings, users folded in", fold_in(propagated, train, valid, test)),
            ("RecBole LightGCN checkpoint, layer-0 item embeddings, users folded in", fold_in(layer0, train, valid, test)),
            ("RecBole LightGCN checkpoint, its own user embeddings", ranking_metrics(own[: shape[0]], train + valid, test)),
        ]
    print(f"`python benchmarks/lightgcn_fold_in.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n")
    print("| item embeddings | lambda (x mean eigenvalue) | valid Recall@20 | test Recall@10 | test Recall@20 | test NDCG@10 | test NDCG@20 |")
    print("|---|---|---|---|---|---|---|")
    for label, result in table:
        edge = " (the grid's edge: widen LAMBDAS)" if result.get("lambda") in (LAMBDAS[0], LAMBDAS[-1]) else ""
        picked = f"{result['lambda']:g}{edge} | {result['valid recall@20']:.4f}" if "lambda" in result else "– | –"
        print(
            f"| {label} | {picked} | {result['recall@10']:.4f} | {result['recall@20']:.4f} | "
            f"{result['ndcg@10']:.4f} | {result['ndcg@20']:.4f} |"
        )


if __name__ == "__main__":
    main()
