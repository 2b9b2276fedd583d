"""The app config (its label is what the model's Meta names)."""
from __future__ import annotations

from django.apps import AppConfig


class IsolationConfig(AppConfig):
    name = "tests.web.django_isolation"
    label = "django_isolation"
