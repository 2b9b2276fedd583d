"""A minimal Django project for tests/web/test_isolation.py: one model, one streaming view."""
