"""Quick-start API of the plugin, mirroring :mod:`recbole.quick_start` over the plugin's Config,
model lookup and trainers."""

import logging
import os
import sys
from logging import getLogger

import torch.distributed as dist
from recbole.data import data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_environment, get_flops, init_logger, init_seed, set_color

from recbole_diffusion.config import Config
from recbole_diffusion.data.dataloader import UserSampledTrainDataLoader
from recbole_diffusion.data.utils import check_splits, create_plugin_dataset
from recbole_diffusion.quick_start.report import best_of_run
from recbole_diffusion.utils import get_model, get_trainer, load_checkpoint
from recbole_diffusion.utils.checkpoint import CheckpointError, restore_model


def run(model, dataset, config_file_list=None, config_dict=None, saved=True, nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """Train and test one model; with ``nproc > 1`` (or a ``world_size``), in distributed processes."""
    if nproc == 1 and world_size <= 0:
        return run_recbole_diffusion(model, dataset, config_file_list, config_dict, saved)
    import torch.multiprocessing as mp

    # RecBole's init_logger creates ./log/<model>/ without exist_ok: made once here, so that the
    # processes do not race for it (one of them would fail with FileExistsError).
    os.makedirs(os.path.join("log", get_model(model).__name__), exist_ok=True)
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update(
        {"world_size": nproc if world_size == -1 else world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset}
    )
    mp.spawn(_run_in_process, args=(model, dataset, config_file_list, config_dict, saved, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def _run_in_process(rank, model, dataset, config_file_list, config_dict, saved, queue):
    run_recbole_diffusion(model, dataset, config_file_list, {**config_dict, "local_rank": rank}, saved, queue)


def split_data(config):
    """Dataset and its train / valid / test dataloaders, seeded by ``split_seed`` (else ``seed``).

    Seeded here too (RecBole seeds before create_dataset), so that the split is reproducible on its
    own, equal across the runs of a comparison over seeds, and rebuilt as is from a checkpoint.
    """
    init_seed(config["split_seed"] if config["split_seed"] is not None else config["seed"], config["reproducibility"])
    dataset = create_plugin_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    if config["train_sampling"] == "user":
        train_data = UserSampledTrainDataLoader(config, train_data._dataset, train_data._sampler, shuffle=config["shuffle"])
    check_splits(config, dataset, valid_data, test_data)
    return dataset, (train_data, valid_data, test_data)


def build(config):
    """Dataset, split dataloaders, model and trainer for a config (seeded as RecBole does)."""
    dataset, (train_data, valid_data, test_data) = split_data(config)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"], config.model_class)(config, model)
    return dataset, (train_data, valid_data, test_data), model, trainer


def model_flops(model, dataset, config, logger):
    """RecBole's FLOPs count of one prediction, or why there is none: it calls ``predict``, which
    some RecBole models leave unimplemented (GRU4RecCPR, SASRecCPR) though they train and rank."""
    try:
        return get_flops(model, dataset, config["device"], logger, construct_transform(config))
    except Exception as error:  # noqa: BLE001  (a count for the log only; the run goes on)
        return f"not counted ({type(error).__name__} in {type(model).__name__}.predict)"


def run_recbole_diffusion(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, queue=None):
    """Train a model, reload its best-validation checkpoint, test it; log and return the results.

    ``model`` is a plugin model (``DiffRec``, ``TDiffRec`` ...), any RecBole model, or
    ``recbole.<Name>`` for RecBole's built-in class where the plugin has one of the same name.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset, (train_data, valid_data, test_data), model, trainer = build(config)
    logger.info(dataset)
    logger.info(model)
    logger.info(set_color("FLOPs", "blue") + f": {model_flops(model, dataset, config, logger)}")

    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=config["show_progress"])
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = run_result(config, trainer, saved, best_valid_score, best_valid_result, test_result)
    if not config["single_spec"]:
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


def run_result(config, trainer, saved, best_valid_score, best_valid_result, test_result):
    """What RecBole's quick start returns of a run (with the best checkpoint's file where saved)."""
    return {
        "model": config.model_label,
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "saved_model_file": trainer.saved_model_file if saved else None,
    }


def objective_function(config_dict=None, config_file_list=None, saved=True, callback_fn=None, state_file=None):
    """One quiet training run for hyper-parameter searches; ``callback_fn(epoch, valid_score, best)``
    is called after every validation (a tuner reports it), the test set is evaluated once at the end.
    ``best`` is the run's best validation so far: ``best_epoch`` (1-based, the last of a tie, as
    RecBole keeps), ``best_valid_score`` and ``validations``, the number of validations.

    With ``state_file`` the run writes its training state there after every validation, and a run
    that finds the file continues from it (:meth:`~..trainer.SafeTrainingMixin.save_training_state`)
    with the same result an uninterrupted run has: ``best`` counts the validations before the
    resume too (a tuner's own history of a restored trial may not). ``epochs`` in the result: the
    epochs trained at the last validation; ``best_epoch`` and ``validations`` as in ``best``."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    logger = getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    init_logger(config)
    logging.basicConfig(level=logging.ERROR)
    _, (train_data, valid_data, test_data), _, trainer = build(config)
    trained, ended, valid_scores = [0], False, []
    if state_file and os.path.isfile(state_file):
        ended, extra = trainer.restore_training_state(state_file, train_data)
        trained[0] = trainer.start_epoch
        valid_scores = [tuple(pair) for pair in extra["valid_scores"]]

    def best_so_far():
        best_epoch, best_score = best_of_run(valid_scores, config["valid_metric_bigger"])
        return {"best_epoch": best_epoch, "best_valid_score": best_score, "validations": len(valid_scores)}

    def after_validation(epoch, valid_score):
        trained[0] = epoch + 1
        valid_scores.append((epoch, float(valid_score)))
        if callback_fn:
            callback_fn(epoch, valid_score, best_so_far())
        if state_file:  # after the report: a state that is ahead of the reports could skip one
            trainer.save_training_state(state_file, epoch, train_data, {"valid_scores": valid_scores})

    if ended:
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    else:
        best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, verbose=False, saved=saved, callback_fn=after_validation)
    test_result = trainer.evaluate(test_data, load_best_model=saved)
    best = best_so_far()
    return {
        **run_result(config, trainer, saved, best_valid_score, best_valid_result, test_result),
        "epochs": trained[0], "best_epoch": best["best_epoch"], "validations": best["validations"],
    }


def load_data_and_model(model_file, device=None, config_dict=None):
    """Config, model (with the checkpoint's weights and state), dataset and dataloaders of a checkpoint.

    ``device`` (``"cpu"``, ``"cuda:1"`` ...) places the model; by default the device the checkpoint
    was trained on where this machine has it, else the CPU. ``config_dict`` overrides stored keys
    that change only how the model infers (DreamRec's ``sampler``, ``inference_steps``;
    ``eval_batch_size``); a key the stored config lacks fails.
    """
    checkpoint = load_checkpoint(model_file, map_location="cpu")
    source = f"checkpoint '{model_file}': stored config"
    config = Config.from_data(checkpoint["config"], device=device, source=source, overrides=config_dict)
    if not os.path.isdir(config["data_path"]):
        raise CheckpointError(
            f"checkpoint '{model_file}' was trained on dataset '{config['dataset']}' at {config['data_path']}, "
            "which is not there (the data are not part of a checkpoint)"
        )
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset, (train_data, valid_data, test_data) = split_data(config)
    logger.info(dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    try:
        restore_model(model, checkpoint)
    except RuntimeError as error:  # weights of another shape: the data changed since training
        raise CheckpointError(
            f"checkpoint '{model_file}' does not fit dataset '{config['dataset']}' as found at {config['data_path']} "
            f"({dataset.user_num - 1} users, {dataset.item_num - 1} items): {str(error).splitlines()[-1].strip()}"
        ) from None
    return config, model, dataset, train_data, valid_data, test_data
