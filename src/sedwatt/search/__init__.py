"""Multi-objective Optuna search over batch size (F1 up, energy down), on one machine or many."""
