"""The DCASE 2022 mean-teacher training loop and its callbacks."""
