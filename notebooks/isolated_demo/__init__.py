"""Modules for `notebooks/subprocess.ipynb`: runs in a process of their own (`--subprocess`)."""
