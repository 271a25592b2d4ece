"""MLflow's own REST integration tests run against a running Cairn (issue 25's acceptance suite).

``plugin`` is a pytest plugin loaded into MLflow's test run (MLflow's venv: stdlib and
``requests`` only, no Cairn imports); ``catalog`` holds what the plugin and the runner script
share and what Cairn's suite tests without MLflow's repository: the test files, how tests are
counted, the tests declared not applicable and why, and the summary of a run's results.
"""
