from recbole_diffusion.trainer.trainer import SafeCheckpointMixin, with_safe_checkpoints

__all__ = ["SafeCheckpointMixin", "with_safe_checkpoints"]
