"""Sweeps: hyperparameter searches whose trials are scheduler jobs (each job a registry run).

``spec`` checks a sweep spec, ``domain`` is the sweep aggregate (pure), ``study`` folds the sweep's
events into an optuna study, ``controller`` drives one sweep through small ports, ``projection``
and ``api`` serve the read model, ``ports`` holds the port protocols and their real adapters.
"""
