"""Compute-to-data: algorithms, jobs, privacy budget, sandbox launcher, trusted DP runner.

Seams left by the marketplace core: ``Dataset.epsilon_total / epsilon_per_job / delta`` are the
budget caps; ``Dataset.declared_schema`` drives preprocessing; the private file is read only via
``marketplace.services.storage.encrypted_file_chunks``."""
