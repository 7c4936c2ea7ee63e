from recbole_diffusion.trainer.trainer import LDiffRecTrainer, LTDiffRecTrainer, SafeCheckpointMixin, with_safe_checkpoints

__all__ = ["LDiffRecTrainer", "LTDiffRecTrainer", "SafeCheckpointMixin", "with_safe_checkpoints"]
