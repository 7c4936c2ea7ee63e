from recbole_diffusion.trainer.trainer import (
    LDiffRecTrainer,
    LTDiffRecTrainer,
    SafeTrainingMixin,
    TrainingDivergedError,
    with_safe_training,
)

__all__ = ["LDiffRecTrainer", "LTDiffRecTrainer", "SafeTrainingMixin", "TrainingDivergedError", "with_safe_training"]
