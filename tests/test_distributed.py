"""Distributed runs (``--nproc``) on a CPU-only machine: gloo instead of RecBole's NCCL."""

import pytest

from recbole_diffusion.quick_start import build, load_data_and_model, run


def test_two_cpu_processes_train_and_test_as_one_would(tiny_config, checkpoint_dir):
    """Each process evaluates half of the test users; the reduced result is the one a single
    process computes on the same checkpoint, but for the one user PyTorch's DistributedSampler
    repeats to give both processes 472 of the 943 (a metric of one user weighs 1/943)."""
    config = tiny_config(epochs=2, eval_batch_size=20000, metric_decimal_place=6)  # several batches per process
    result = run("DiffRec", "ml-100k", config_dict=config, nproc=2, port="29517")
    assert result is not None and set(result["test_result"]) >= {"recall@20", "ndcg@20"}

    loaded_config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    assert loaded_config["single_spec"] and loaded_config["device"].type == "cpu"
    _, _, _, trainer = build(loaded_config)
    trainer.model.load_state_dict(model.state_dict())
    single = trainer.evaluate(test_data, load_best_model=False)
    for metric, value in result["test_result"].items():
        assert value == pytest.approx(single[metric], abs=1.01 / 943), metric
