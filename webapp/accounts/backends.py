"""Sign-in by username whatever its case: names are unique regardless of case (migration 0001)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class CaseInsensitiveModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        User = get_user_model()
        if username is not None:
            match = User.objects.filter(username__iexact=username).values_list("username", flat=True).first()
            username = match or username
        return super().authenticate(request, username=username, password=password, **kwargs)
