"""A run stopped after a validation continues from its training state as if it had not stopped."""

import pytest

from recbole_diffusion.quick_start import objective_function
from recbole_diffusion.quick_start.compare import measure_run
from recbole_diffusion.trainer.trainer import SafeTrainingMixin
from recbole_diffusion.utils.checkpoint import CheckpointError

# Each keeps a kind of state a restart would lose: DiffRec draws noise from torch's generator,
# L-DiffRec anneals by counters in buffers and trains two parameter groups, MultiVAE counts its
# batches in a plain attribute (its KL weight, annealed over 8 batches here), BPR samples its
# negatives with NumPy's generator, DreamRec drops conditions at random and samples by a reverse
# chain at every validation.
SMALL = {
    "DiffRec": {},
    "LDiffRec": {"in_dims": [8], "n_cate": 2},
    "MultiVAE": {"mlp_hidden_size": [16], "total_anneal_steps": 8, "anneal_cap": 1.0},
    "BPR": {},
    "DreamRec": {"embedding_size": 8, "MAX_ITEM_LIST_LENGTH": 5, "train_batch_size": 1024, "uncond_prob": 0.1},
}


class Interrupted(Exception):
    """Raised by a report callback: the run stops as if killed there."""


def train(config, state_file=None, stop_at=None):
    reports = []

    def report(epoch, valid_score, best):
        reports.append((epoch, valid_score, best))
        if epoch == stop_at:
            raise Interrupted

    result = objective_function(config_dict=config, callback_fn=report, state_file=state_file)
    return reports, result


@pytest.mark.parametrize("model", sorted(SMALL))
def test_a_run_resumed_from_its_training_state_ends_as_an_uninterrupted_one(model, tiny_config, tmp_path):
    config = tiny_config(model=model, dataset="ml-100k", epochs=4, **SMALL[model])
    whole, uninterrupted = train(config)
    state = str(tmp_path / "state.pth")
    resumable = {**config, "checkpoint_dir": str(tmp_path / "resumed")}
    with pytest.raises(Interrupted):  # killed after its third report, before that state was written
        train(resumable, state, stop_at=2)
    resumed, result = train(resumable, state)
    assert resumed == whole[2:]  # the third epoch again, then the fourth: the same scores
    assert result["test_result"] == uninterrupted["test_result"]
    assert result["best_valid_result"] == uninterrupted["best_valid_result"] and result["epochs"] == 4
    # the best so far counts the validations before the resume: the same as the uninterrupted run's
    assert [best for *_, best in resumed] == [best for *_, best in whole[2:]] and whole[-1][2]["validations"] == 4
    assert (result["best_epoch"], result["validations"]) == (uninterrupted["best_epoch"], uninterrupted["validations"])


def test_a_run_whose_state_says_it_ended_only_tests(tiny_config, tmp_path):
    config = tiny_config(model="DiffRec", dataset="ml-100k", epochs=3)
    state = str(tmp_path / "state.pth")
    first, finished = train(config, state)
    again, result = train(config, state)
    assert len(first) == 3 and again == []
    assert result["test_result"] == finished["test_result"] and result["saved_model_file"] == finished["saved_model_file"]
    assert result["epochs"] == 3


def test_a_state_whose_best_checkpoint_is_gone_is_refused_naming_both(tiny_config, tmp_path):
    config = tiny_config(model="DiffRec", dataset="ml-100k", epochs=3)
    state = str(tmp_path / "state.pth")
    with pytest.raises(Interrupted):
        train(config, state, stop_at=1)
    for checkpoint in (tmp_path / "saved").glob("*.pth"):
        checkpoint.unlink()
    with pytest.raises(CheckpointError, match=r"training state '.*state.pth': its best checkpoint '.*\.pth' is gone"):
        train(config, state)


def test_a_measured_run_goes_on_from_its_state_with_its_costs_summed(tiny_config, tmp_path, monkeypatch):
    """A comparison's run: the same test metrics and validation curve, every epoch's clock kept."""
    config = tiny_config(epochs=4)
    uninterrupted = measure_run("DiffRec", "ml-100k", config_dict=config, per_user=True)
    save = SafeTrainingMixin.save_training_state

    def killed_after_the_second_state(self, path, epoch, train_data, extra=None):
        save(self, path, epoch, train_data, extra)
        if epoch == 1:
            raise Interrupted

    monkeypatch.setattr(SafeTrainingMixin, "save_training_state", killed_after_the_second_state)
    state = str(tmp_path / "state.pth")
    resumable = {**config, "checkpoint_dir": str(tmp_path / "resumed")}
    with pytest.raises(Interrupted):
        measure_run("DiffRec", "ml-100k", config_dict=resumable, per_user=True, state_file=state)
    monkeypatch.setattr(SafeTrainingMixin, "save_training_state", save)
    resumed = measure_run("DiffRec", "ml-100k", config_dict=resumable, per_user=True, state_file=state)
    for key in ("test_result", "best_valid_result", "best_epoch", "epochs", "per_user", "params"):
        assert resumed[key] == uninterrupted[key], key
    assert resumed["resumed"] == 1 and "resumed" not in uninterrupted
    # its clocks hold the 4 epochs and 5 evaluations of both parts, and its wall time covers them
    assert resumed["wall_s"] >= resumed["s_per_epoch"] * 4 + resumed["s_per_eval"] * 5
