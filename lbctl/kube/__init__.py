"""Adapters to the Kubernetes API: client setup, watches, writers, leases (I/O)."""
