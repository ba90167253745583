"""Controller tests use ``core`` and ``run_controller`` from tests/conftest.py."""
