"""Trainers of the plugin."""

import math
import os
import random
import uuid

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_diffusion.utils.checkpoint import (
    CheckpointError, config_as_data, load_checkpoint, restore_model, save_checkpoint, state_to_data,
)


class TrainingDivergedError(RuntimeError):
    """A training loss that is not finite or exploded: the run stops before it can save a "best"."""


class SafeTrainingMixin:
    """Mixed in front of any RecBole trainer (see :func:`with_safe_training`).

    - Evaluation results are plain floats (RecBole's are NumPy scalars).
    - Each run's checkpoint file has a name of its own (RecBole's, plus a random suffix).
    - Checkpoints hold data only (:mod:`..utils.checkpoint`): the config as plain values, tensors,
      and ``other_parameter()`` state converted to tensors, so every RecBole model (ItemKNN and EASE
      keep scipy/numpy state) reloads its best checkpoint under a weights-only load.
    - Distributed runs on CPU (gloo, see the Config): the model is wrapped for the CPU, not a GPU.
    - A training loss that is NaN / infinite, or above ``divergence_factor`` x max(|first batch
      loss|, 1), stops the run (:class:`TrainingDivergedError`) naming the epoch, the loss and the
      learning rate, before a diverged model can become the best checkpoint.
    - :meth:`save_training_state` / :meth:`restore_training_state`: a run stopped after a validation
      continues from there as if it had not stopped (weights, optimiser, early stopping, random
      generators), so an interrupted search trial resumes instead of starting again.
    """

    def __init__(self, config, model):
        # RecBole's ensure_dir has no exist_ok: the processes of a distributed run would race for it
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        distributed_cpu = not config["single_spec"] and config["device"].type == "cpu"
        if distributed_cpu:  # RecBole would wrap the model for one GPU per process
            config["single_spec"] = True
        super().__init__(config, model)
        # RecBole names the file to the second: two runs sharing checkpoint_dir that start in the
        # same second would write, and test, one file
        if getattr(self, "saved_model_file", None):
            stem, extension = os.path.splitext(self.saved_model_file)
            self.saved_model_file = f"{stem}-{uuid.uuid4().hex[:8]}{extension}"
        if distributed_cpu:
            config["single_spec"] = False
            self.distributed_model = torch.nn.parallel.DistributedDataParallel(self.model)
        if not config["single_spec"]:  # rank 0 writes the checkpoint: every rank reads that file
            name = [getattr(self, "saved_model_file", None)]
            torch.distributed.broadcast_object_list(name, src=0)
            self.saved_model_file = name[0]

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {**self._checkpoint_state(epoch), "cur_step": self.cur_step, "best_valid_score": float(self.best_valid_score)}
        save_checkpoint(state, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def save_pretrained_model(self, epoch, saved_model_file):
        """RecBole's pre-training trainers (RaCT, S3Rec, ...) save through here: the same data-only format."""
        save_checkpoint(self._checkpoint_state(epoch), saved_model_file)
        self.saved_model_file = saved_model_file

    def _checkpoint_state(self, epoch):
        return {
            "config": config_as_data(self.config),
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
            "other_parameter": state_to_data(self._other_parameters(), "other_parameter"),
            "optimizer": self.optimizer.state_dict(),
        }

    def _other_parameters(self):
        """The model's ``other_parameter()`` less the entries that are its own submodules.

        RecBole's DIN and DIEN list their embedding layer there; its weights are in the state dict.
        """
        submodules = {id(module) for module in self.model.modules()}
        return {key: value for key, value in self.model.other_parameter().items() if id(value) not in submodules}

    def _load_model_state(self, checkpoint_file):
        checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
        restore_model(self.model, checkpoint)
        return checkpoint

    def resume_checkpoint(self, resume_file):
        self.saved_model_file = str(resume_file)
        self._continue_after(self._load_model_state(self.saved_model_file))
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _continue_after(self, checkpoint):
        """Optimiser and early stopping as a loaded checkpoint left them: ``fit`` goes on with the
        epoch after its own."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch, self.cur_step = checkpoint["epoch"] + 1, checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]

    def save_training_state(self, path, epoch, train_data, extra=None):
        """Write what ``fit`` needs to go on after ``epoch`` exactly as if it had not stopped: the
        checkpoint's contents, the early-stopping state, the best checkpoint's path, the random
        generators (torch's, NumPy's, Python's, the training dataloader's shuffle) and the numbers
        the model's modules keep as plain attributes (RecBole's MultiVAE counts its batches in one
        for its KL annealing); ``extra``: the caller's own data (a benchmark's clocks so far)."""
        save_checkpoint({
            **self._checkpoint_state(epoch),
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": None if self.best_valid_result is None else dict(self.best_valid_result),
            "saved_model_file": self.saved_model_file,
            "first_batch_loss": getattr(self, "_first_batch_loss", None),
            "random": _random_state(train_data.generator),
            "numbers": _module_numbers(self.model),
            "extra": extra or {},
        }, path)

    def restore_training_state(self, path, train_data):
        """Continue from :meth:`save_training_state`'s file; returns ``(ended, extra)``: whether
        training had ended there (early stopping or the last epoch: ``fit`` must not be called
        again), and the ``extra`` data saved with it."""
        state = load_checkpoint(path, map_location="cpu")  # the generators take CPU tensors; the weights move on load
        if not os.path.isfile(state["saved_model_file"]):
            raise CheckpointError(f"training state '{path}': its best checkpoint '{state['saved_model_file']}' is gone")
        restore_model(self.model, state)
        modules = dict(self.model.named_modules())
        for name, numbers in state["numbers"].items():
            for key, value in numbers.items():
                setattr(modules[name], key, value)
        self._continue_after(state)
        self.best_valid_result, self.saved_model_file = state["best_valid_result"], state["saved_model_file"]
        if state["first_batch_loss"] is not None:
            self._first_batch_loss = state["first_batch_loss"]
        _set_random_state(state["random"], train_data.generator)
        self.logger.info(f"Training state loaded from {path}: resuming after epoch {state['epoch']}")
        return self.cur_step > self.stopping_step or self.start_epoch >= self.epochs, state["extra"]

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            if not self.config["single_spec"]:
                torch.distributed.barrier()  # until rank 0 has written it
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_state(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        # plain floats: under NumPy 2 RecBole's values print as np.float64(0.0424)
        return None if result is None else type(result)((key, float(value)) for key, value in result.items())

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        self._divergence_epoch, self._divergence_batch = epoch_idx, 0
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _check_nan(self, loss):
        """RecBole calls this on every batch loss before the backward pass."""
        value = float(loss.detach())  # RecBole's own loss bookkeeping syncs on every batch already
        self._divergence_batch = getattr(self, "_divergence_batch", 0) + 1
        reference = getattr(self, "_first_batch_loss", None)
        if reference is None and math.isfinite(value):
            self._first_batch_loss = reference = value
        factor = self.config["divergence_factor"]
        exploded = factor is not None and reference is not None and abs(value) > factor * max(abs(reference), 1.0)
        if math.isfinite(value) and not exploded:
            return
        rates = {key: self.config[key] for key in ("learning_rate", "lr1", "lr2") if self.config[key] is not None}
        raise TrainingDivergedError(
            f"training diverged at epoch {getattr(self, '_divergence_epoch', 0)}, batch {self._divergence_batch}: "
            f"loss = {value:.4g} (first batch: {reference if reference is None else f'{reference:.4g}'}"
            f", divergence_factor = {factor}). Lower the learning rate ({', '.join(f'{k} = {v}' for k, v in rates.items())})"
            "; no checkpoint of the diverged model was kept as best"
        )


def _module_numbers(model):
    """``{module name: {attribute: value}}`` of the attributes that are ints or floats."""
    return {
        name: {key: value for key, value in vars(module).items() if type(value) in (int, float)}
        for name, module in model.named_modules()
    }


def _random_state(generator):
    """The random generators' states as tensors and numbers (a weights-only checkpoint holds them)."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": position, "has_gauss": has_gauss, "cached_gaussian": cached_gaussian},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "dataloader": generator.get_state(),
    }


def _set_random_state(state, generator):
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    generator.set_state(state["dataloader"])


def with_safe_training(trainer_class):
    """``trainer_class`` with :class:`SafeTrainingMixin` in front (itself if it has it)."""
    if issubclass(trainer_class, SafeTrainingMixin):
        return trainer_class
    return type(trainer_class.__name__, (SafeTrainingMixin, trainer_class), {"__module__": __name__})


class LDiffRecTrainer(SafeTrainingMixin, Trainer):
    """RecBole's trainer for L-DiffRec / LT-DiffRec (Wang et al., SIGIR 2023, Sec. 3.4).

    - One optimiser (RecBole's ``learner``, AdamW by default as in the authors' code) with two
      parameter groups: the autoencoder at ``lr1`` / ``wd1`` and the denoiser at ``lr2`` / ``wd2``.
      AdamW keeps its state per parameter, so this steps exactly like the authors' two AdamW
      optimisers; RecBole's ``learning_rate`` / ``weight_decay`` are not used.
    - After each training epoch, ``model.end_train_epoch()`` advances the per-epoch annealing of
      the loss weight lambda (the authors' ``update_count``).
    """

    def _build_optimizer(self, **kwargs):
        if "params" not in kwargs:
            groups = self.model.parameter_groups()
            grouped = {id(p) for params in groups.values() for p in params}
            missing = [name for name, p in self.model.named_parameters() if p.requires_grad and id(p) not in grouped]
            if missing:
                raise ValueError(f"parameters in no optimiser group: {missing}")
            kwargs["params"] = [
                {"params": groups["autoencoder"], "lr": self.config["lr1"], "weight_decay": self.config["wd1"], "name": "autoencoder"},
                {"params": groups["denoiser"], "lr": self.config["lr2"], "weight_decay": self.config["wd2"], "name": "denoiser"},
            ]
        return super()._build_optimizer(**kwargs)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.model.end_train_epoch()
        return loss


# LT-DiffRec trains like L-DiffRec (get_trainer looks up ``<Name>Trainer``).
LTDiffRecTrainer = LDiffRecTrainer
