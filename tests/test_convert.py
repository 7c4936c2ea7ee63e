"""Converters of the papers' published splits into RecBole benchmark files (on small synthetic copies)."""

import numpy as np
import pandas as pd
import pytest
from recbole.data import create_dataset, data_preparation

from recbole_diffusion.config import Config
from recbole_diffusion.data.convert import ConvertError, diffrec_to_atomic, dreamrec_to_atomic, main
from recbole_diffusion.quick_start import build, run_recbole_diffusion


def load(model, config_file, **overrides):
    config = Config(model=model, config_file_list=[config_file], config_dict={"show_progress": False, **overrides})
    dataset = create_dataset(config)
    return config, dataset, data_preparation(config, dataset)


@pytest.fixture
def diffrec_dir(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    splits = {}
    for split, n in (("train", 300), ("valid", 80), ("test", 40)):
        pairs = np.stack([rng.integers(0, 30, n), rng.integers(0, 50, n)], axis=1)
        pairs = np.unique(pairs, axis=0)  # the published split has no duplicate (user, item) rows
        np.save(src / f"{split}_list.npy", pairs.astype(np.int64))
        splits[split] = pairs
    # no (user, item) pair repeats across splits either
    seen = {tuple(p) for p in splits["train"]}
    splits["valid"] = np.array([p for p in splits["valid"] if tuple(p) not in seen])
    seen |= {tuple(p) for p in splits["valid"]}
    splits["test"] = np.array([p for p in splits["test"] if tuple(p) not in seen])
    for split in ("valid", "test"):
        np.save(src / f"{split}_list.npy", splits[split].astype(np.int64))
    return src, splits


def test_diffrec_split_is_loaded_exactly(tmp_path, diffrec_dir):
    src, splits = diffrec_dir
    config_file = diffrec_to_atomic(str(src), str(tmp_path / "data"), "tiny-diffrec")
    config, dataset, (train, valid, test) = load("DiffRec", config_file)
    assert [len(train.dataset), len(valid.dataset), len(test.dataset)] == [len(splits[s]) for s in ("train", "valid", "test")]
    # the valid rows are exactly the published (user, item) pairs, in original ids
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    valid_feat = valid.dataset.inter_feat
    users = valid.dataset.id2token(uid, valid_feat[uid].numpy()).astype(int)
    items = valid.dataset.id2token(iid, valid_feat[iid].numpy()).astype(int)
    assert sorted(zip(users, items)) == sorted(map(tuple, splits["valid"].tolist()))
    # each user's train rows keep their file order in time
    frame = pd.read_csv(tmp_path / "data" / "tiny-diffrec" / "tiny-diffrec.train.inter", sep="\t")
    assert frame["timestamp:float"].is_monotonic_increasing
    assert (frame[["user_id:token", "item_id:token"]].to_numpy() == splits["train"]).all()


def test_diffrec_bad_input_names_the_file(tmp_path, diffrec_dir):
    src, _ = diffrec_dir
    np.save(src / "valid_list.npy", np.zeros((5, 3), dtype=np.int64))
    with pytest.raises(ConvertError, match=r"valid_list\.npy: expected an array of shape \(n, 2\)"):
        diffrec_to_atomic(str(src), str(tmp_path / "data"))
    (src / "test_list.npy").unlink()
    assert main(["diffrec", str(src), str(tmp_path / "data")]) == 1


@pytest.fixture
def zhihu_dir(tmp_path):
    """A DreamRec-style split: histories padded at the end with item_num; empty ones are all padding, len 1."""
    pad, rng = 40, np.random.default_rng(1)
    src = tmp_path / "zhihu"
    src.mkdir()

    def frame(n):
        rows = []
        for i in range(n):
            length = i % 6
            history = rng.integers(0, pad, length).tolist()
            rows.append({"seq": history + [pad] * (5 - length), "len_seq": max(length, 1), "next": int(rng.integers(0, pad))})
        return pd.DataFrame(rows)

    frames = {"train_data.df": frame(120), "val_data.df": frame(30), "test_data.df": frame(24)}
    for name, data in frames.items():
        data.to_pickle(src / name)
    pd.DataFrame({"seq_size": [5], "item_num": [pad]}).to_pickle(src / "data_statis.df")
    return src, frames


def test_dreamrec_examples_are_loaded_exactly(tmp_path, zhihu_dir):
    src, frames = zhihu_dir
    config_file = dreamrec_to_atomic(str(src), str(tmp_path / "data"), "tiny-zhihu", trust_pickle=True)
    config, dataset, (train, valid, test) = load("DreamRec", config_file, embedding_size=8, steps=5, inference_steps=5)
    assert [len(train.dataset), len(valid.dataset), len(test.dataset)] == [120, 30, 24]
    assert dataset.item_num == 40 + 1  # every published item is a candidate, plus RecBole's padding
    lengths = test.dataset.inter_feat[config["ITEM_LIST_LENGTH_FIELD"]].numpy()
    assert lengths.tolist() == [i % 6 for i in range(24)]  # all-padding rows become empty histories
    feat = test.dataset.inter_feat
    seqs = feat[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]]
    for row in (3, 5):
        tokens = test.dataset.id2token(config["ITEM_ID_FIELD"], seqs[row, : lengths[row]].numpy()).astype(int)
        assert tokens.tolist() == frames["test_data.df"]["seq"][row][: lengths[row]]
    target = test.dataset.id2token(config["ITEM_ID_FIELD"], feat[config["ITEM_ID_FIELD"]].numpy()).astype(int)
    assert target.tolist() == frames["test_data.df"]["next"].tolist()


def test_dreamrec_bad_rows_name_the_file(tmp_path, zhihu_dir):
    src, frames = zhihu_dir
    out = tmp_path / "data"
    dreamrec_to_atomic(str(src), str(out), trust_pickle=True)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    broken = frames["test_data.df"].copy()
    broken.at[4, "seq"] = [3, 40, 7, 40, 40]  # padding in the middle
    broken.to_pickle(src / "test_data.df")
    with pytest.raises(ConvertError, match=r"test_data\.df: row 4"):
        dreamrec_to_atomic(str(src), str(out), trust_pickle=True)
    # train and valid were converted before test failed: nothing of that attempt is left, the
    # earlier complete conversion is untouched
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_dreamrec_pickles_are_refused_without_trust(tmp_path, zhihu_dir, monkeypatch, capsys):
    src, _ = zhihu_dir
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("unpickled without --trust-pickle"))
    assert main(["dreamrec", str(src), str(tmp_path / "data")]) == 1
    assert "--trust-pickle" in capsys.readouterr().err and not (tmp_path / "data").exists()


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "DreamRec"])
def test_empty_histories_train_recbole_sequential_models(tmp_path, zhihu_dir, model):
    """Rows with no history read the padding position: RecBole's SASRec / GRU4Rec would index -1."""
    src, _ = zhihu_dir
    config_file = dreamrec_to_atomic(str(src), str(tmp_path / "data"), "tiny-zhihu", trust_pickle=True)
    small = {
        "SASRec": {"hidden_size": 8, "inner_size": 8, "n_layers": 1, "n_heads": 1, "loss_type": "CE", "train_neg_sample_args": None},
        "GRU4Rec": {"embedding_size": 8, "hidden_size": 8, "loss_type": "CE", "train_neg_sample_args": None},
        "DreamRec": {"embedding_size": 8, "steps": 5, "inference_steps": 5},
    }[model]
    config_dict = {"epochs": 1, "topk": [10], "valid_metric": "Hit@10", "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"), **small}
    config = Config(model=model, config_file_list=[config_file], config_dict=config_dict)
    dataset, (_, _, test), _, _ = build(config)
    lengths = test.dataset.inter_feat[config["ITEM_LIST_LENGTH_FIELD"]].numpy()
    assert lengths.tolist() == [max(i % 6, 1) for i in range(24)]
    result = run_recbole_diffusion(model=model, config_file_list=[config_file], config_dict=config_dict)
    assert 0.0 <= result["test_result"]["hit@10"] <= 1.0
