"""The one model: numbered rows that the streaming view reads with a queryset iterator."""
from __future__ import annotations

from django.db import models


class Row(models.Model):
    n = models.IntegerField()

    class Meta:
        app_label = "django_isolation"
