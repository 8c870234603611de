"""What is evaluated: models and hooks, SAE loading, controls, text windows, probing tasks,
the bundled zoo, training and synthetic data."""
