"""--recommend: top-k lists from a checkpoint of every model kind, candidate scores for CTR models."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_diffusion.quick_start import load_data_and_model, run_recbole_diffusion
from recbole_diffusion.quick_start.recommend import recommend
from recbole_diffusion.utils import ConfigError
from recbole_diffusion.utils.checkpoint import CheckpointError

@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_hpmn):
    """One-epoch checkpoints of DiffRec, EASE, DreamRec (DDIM, 5 steps) and HPMN on ml-100k."""
    folder = tmp_path_factory.mktemp("checkpoints")
    common = {"epochs": 1, "show_progress": False, "checkpoint_dir": str(folder), "seed": 2020}
    settings = {
        "DiffRec": {"dims_dnn": [16], "steps": 5},
        "EASE": {},
        "DreamRec": {"sampler": "ddim", "inference_steps": 5, "embedding_size": 16, "steps": 20},
        "HPMN": small_hpmn,
    }
    return {
        model: run_recbole_diffusion(model=model, dataset="ml-100k", config_dict={**common, **own})["saved_model_file"]
        for model, own in settings.items()
    }


def interacted(dataset, splits):
    """{user token: items of the user in these splits} (for sequential data: targets and histories)."""
    seen = {}
    uid, iid = dataset.uid_field, dataset.iid_field
    for split in splits:
        feat = split.dataset.inter_feat
        lists = feat[iid + "_list"].numpy() if iid + "_list" in feat else np.zeros((len(feat), 0), dtype=np.int64)
        for user, item, history in zip(feat[uid].numpy(), feat[iid].numpy(), lists):
            seen.setdefault(user, set()).update([item, *history[history > 0]])
    return {dataset.id2token(uid, user): {dataset.id2token(iid, i) for i in items} for user, items in seen.items()}


@pytest.mark.parametrize("model", ["DiffRec", "EASE", "DreamRec"])
def test_every_user_gets_k_unseen_items_by_falling_score(trained, model):
    frame = recommend(trained[model], k=10)
    config, net, dataset, train_data, valid_data, test_data = load_data_and_model(trained[model])
    assert len(frame) == 943 * 10 and frame.user.nunique() == 943 and list(frame["rank"][:10]) == list(range(1, 11))
    seen = interacted(dataset, [train_data, valid_data, test_data])
    assert not any(item in seen[user] for user, item in zip(frame.user, frame.item))
    assert (frame.groupby("user", sort=False).score.diff().dropna() <= 0).all()
    # kept held-out items: still no training item, and some user now gets one of its test items
    kept = recommend(trained[model], k=10, keep_held_out=True)
    train_seen = interacted(dataset, [train_data])
    assert not any(item in train_seen[user] for user, item in zip(kept.user, kept.item))
    assert any(item in seen[user] - train_seen.get(user, set()) for user, item in zip(kept.user, kept.item))


@pytest.mark.parametrize("model", ["DiffRec", "EASE"])
def test_the_first_users_list_is_the_top_of_the_models_own_full_sort_predict(trained, model):
    frame = recommend(trained[model], k=10)
    config, net, dataset, train_data, valid_data, test_data = load_data_and_model(trained[model])
    net.eval()
    first = dataset.token2id(dataset.uid_field, frame.user.iloc[0])
    with torch.no_grad():
        scores = net.full_sort_predict(train_data.dataset.join(Interaction({dataset.uid_field: torch.tensor([first])}))).view(-1).clone()
    scores[0] = -torch.inf
    for split in (train_data, valid_data, test_data):
        feat = split.dataset.inter_feat
        scores[feat[dataset.iid_field][feat[dataset.uid_field] == first]] = -torch.inf
    expected = dataset.id2token(dataset.iid_field, torch.topk(scores, 10).indices.numpy())
    assert list(frame.item[:10]) == list(expected)


def test_dreamrec_recommends_after_each_users_latest_history_with_the_sampler_asked_for(trained):
    config, *_ = load_data_and_model(trained["DreamRec"], config_dict={"sampler": "ddpm", "inference_steps": None})
    assert config["sampler"] == "ddpm"
    frame = recommend(trained["DreamRec"], users=["196", "1"], k=5, config_dict={"inference_steps": 2})
    assert list(frame.user) == ["196"] * 5 + ["1"] * 5
    with pytest.raises(ConfigError, match="inference_steps"):
        recommend(trained["DreamRec"], k=5, config_dict={"inference_steps": 50})


def test_hpmn_scores_candidates_as_its_incremental_serving_does(trained, tmp_path):
    """The README's serving example: a user's memory written behaviour by behaviour, then scored."""
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(trained["HPMN"], device="cpu")
    model.eval()
    rows = pd.DataFrame({"user_id": ["196", "196", "186", "22"], "item_id": ["242", "302", "377", "51"]})
    frame = recommend(trained["HPMN"], candidates=rows)
    assert list(frame.columns) == ["user", "item", "score"] and len(frame) == 4
    assert ((frame.score > 0) & (frame.score < 1)).all()
    # serving: the user's whole known sequence (test history + its target), the last L behaviours
    feat = test_data.dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    for user, item, score in zip(frame.user, frame.item, frame.score):
        row = feat[feat[uid] == dataset.token2id(uid, user)]
        history = row[iid + "_list"][-1][: row["item_length"][-1]].tolist() + [int(row[iid][-1])]
        history = history[-config["MAX_ITEM_LIST_LENGTH"]:]
        with torch.no_grad():
            memory = model.init_memory(1)
            for step, behaviour in enumerate(history, start=1):
                memory = model.update_memory(memory, torch.tensor([behaviour]), step)
            served = model.score(memory, torch.tensor([dataset.token2id(iid, item)]))
        assert served.item() == pytest.approx(score, abs=1e-5)


def test_a_ctr_model_without_candidates_says_what_to_give(trained):
    with pytest.raises(ConfigError, match="predicts clicks .* --candidates=FILE"):
        recommend(trained["HPMN"], k=10)
    with pytest.raises(ConfigError, match="1 of 2 items are not items of dataset 'ml-100k' \\(field item_id\\), e.g. 'nope'"):
        recommend(trained["HPMN"], candidates=pd.DataFrame({"user_id": ["196", "186"], "item_id": ["242", "nope"]}))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"users": ["196", "nobody", "nor-me"]}, "2 of 3 users are not users of dataset 'ml-100k' .*'nobody'"),
        ({"k": 5000}, r"--topk=5000: give an integer in \[1, 1682\]"),
        ({"k": 0}, r"--topk=0"),
        ({"config_dict": {"nosuchkey": 1}}, "'nosuchkey' = 1 is not a key of the stored config"),
    ],
)
def test_bad_requests_fail_naming_what_is_wrong(trained, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        recommend(trained["EASE"], **{"k": 10, **kwargs})


def test_a_checkpoint_whose_data_changed_or_went_fails_clearly(trained, tmp_path):
    import recbole

    from recbole_diffusion.utils.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(trained["DiffRec"])
    source = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "ml-100k.inter").write_text("\n".join(source.read_text().splitlines()[:3001]) + "\n")
    for data_path, message in ((str(tmp_path / "ml-100k"), "does not fit dataset 'ml-100k' as found at"), (str(tmp_path / "gone"), "which is not there")):
        checkpoint["config"]["final_config_dict"]["data_path"] = data_path
        path = tmp_path / "moved.pth"
        save_checkpoint({key: value for key, value in checkpoint.items() if key != "format"}, path)
        with pytest.raises(CheckpointError, match=message):
            recommend(str(path), k=10)


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_the_command_writes_every_users_list_and_leaves_nothing_half_written(trained, tmp_path, name, run_entry, capsys):
    users = tmp_path / "users.txt"
    users.write_text("196\n186\n\n22\n")
    assert run_entry(f"--recommend={trained['EASE']}", "--topk=3", f"--users={users}", f"--output={tmp_path / name}") is None
    assert f"written: {tmp_path / name} (9 rows)" in capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / name) if name.endswith(".parquet") else pd.read_csv(tmp_path / name, dtype={"user": str, "item": str})
    assert list(frame.user) == ["196"] * 3 + ["186"] * 3 + ["22"] * 3 and list(frame["rank"]) == [1, 2, 3] * 3
    same = recommend(trained["EASE"], users=["196", "186", "22"], k=3)
    assert list(frame.item) == list(same.item) and np.allclose(frame.score, same.score)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
