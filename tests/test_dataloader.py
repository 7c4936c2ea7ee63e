"""train_sampling: user, LightGCN's draws of training interactions, against RecBole's."""

from collections import Counter

import pytest

from recbole_diffusion.config import Config
from recbole_diffusion.quick_start.quick_start import split_data
from recbole_diffusion.utils import ConfigError


def drawn_pairs(sampling, seed=2020):
    """The (user, item) pairs of BPR's first training epoch on ml-100k, and the training interactions."""
    config = Config(model="BPR", dataset="ml-100k", config_dict={"train_sampling": sampling, "seed": seed})
    _, (train_data, _, _) = split_data(config)
    feat = train_data._dataset.inter_feat
    interactions = list(zip(feat["user_id"].tolist(), feat["item_id"].tolist()))
    pairs = [pair for batch in train_data for pair in zip(batch["user_id"].tolist(), batch["item_id"].tolist())]
    return pairs, interactions


def test_user_sampling_draws_every_user_alike_from_their_own_interactions():
    pairs, interactions = drawn_pairs("user")
    assert len(pairs) == len(interactions)  # as many draws an epoch as training interactions
    assert set(pairs) <= set(interactions)  # each a training interaction of the user drawn
    per_user, drawn = Counter(user for user, _ in interactions), Counter(user for user, _ in pairs)
    expected = len(pairs) / len(per_user)  # ~85 draws a user
    heaviest, lightest = max(per_user, key=per_user.get), min(per_user, key=per_user.get)
    assert per_user[heaviest] > 5 * expected and per_user[lightest] < expected / 2
    for user in (heaviest, lightest):  # binomial: within 5 standard deviations of the same share
        assert abs(drawn[user] - expected) < 5 * expected**0.5
    # RecBole's own loader: every training interaction once
    recbole_pairs, _ = drawn_pairs("interaction")
    assert sorted(recbole_pairs) == sorted(interactions)


def test_user_sampling_draws_by_the_seed():
    assert drawn_pairs("user")[0] == drawn_pairs("user")[0] != drawn_pairs("user", seed=7)[0]


@pytest.mark.parametrize(
    "model, value, message",
    [
        ("BPR", "users", r"'train_sampling' = 'users': must be one of \['interaction', 'user'\]"),
        ("SASRec", "user", "for a general recommender; SASRec is sequential"),
        ("MultiVAE", "user", "MultiVAE trains from RecBole's UserDataLoader instead"),
    ],
)
def test_a_sampling_the_model_cannot_take_is_refused_before_loading(no_data_loading, model, value, message):
    with pytest.raises(ConfigError, match=message):
        Config(model=model, dataset="ml-100k", config_dict={"train_sampling": value})


def test_a_distributed_run_is_refused_user_sampling(no_data_loading, free_port):
    """Each process would draw the same pairs: refused once the process group is up (here a gloo
    group of one process, which is all the Config needs to count as distributed)."""
    import torch.distributed

    distributed = {"local_rank": 0, "world_size": 1, "offset": 0, "nproc": 1, "ip": "127.0.0.1", "port": free_port}
    try:
        with pytest.raises(ConfigError, match=r"a distributed run \(--nproc > 1\) would train every process"):
            Config(model="BPR", dataset="ml-100k", config_dict={"train_sampling": "user", **distributed})
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
