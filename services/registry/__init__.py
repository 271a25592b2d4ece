"""Registry service: projects, experiments, runs, models, model versions and aliases."""
