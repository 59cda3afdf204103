"""Training: supervised pretraining, the distillation step, the epoch loop, evaluation."""
