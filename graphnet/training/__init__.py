"""Training: models (``Model``, ``Sequential``), the fit/evaluate/predict loop (``trainer``),
optimizers and their schedules, losses, metrics, callbacks, saving and the summary table."""
