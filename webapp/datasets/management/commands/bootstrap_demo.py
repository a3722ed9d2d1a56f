"""Create the embedded demo: a `demo` user and a dataset from the slice the project ships.

Idempotent: a second run keeps the user's password and the dataset. The password is printed once,
when the user is created (or when `--reset-password` is given).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from webapp.datasets.models import Dataset
from webapp.datasets.services import create_dataset

DEMO_FILE = Path(settings.BASE_DIR) / "data" / "sanity" / "claims_dev.jsonl"
DEMO_NAME = "Sanity claims (demo)"


class Command(BaseCommand):
    help = "Create the demo user and the demo dataset (embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--reset-password", action="store_true")

    def handle(self, *args, username: str, reset_password: bool, **options):
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            password = None
            if created or reset_password:
                password = secrets.token_urlsafe(9)
                user.set_password(password)
                user.save()
            if not Dataset.objects.filter(owner=user, name=DEMO_NAME).exists():
                create_dataset(
                    owner=user, filename=DEMO_FILE.name, data=DEMO_FILE.read_bytes(), task="claims",
                    name=DEMO_NAME, consistency="key:answer",
                    description="Pairs of claims about one question (one true, one false); the project's "
                                "sanity slice, made by scripts/make_sanity.py.",
                )
        if password:
            self.stdout.write(self.style.SUCCESS(f"demo login: username {username!r}, password {password!r}"))
        else:
            self.stdout.write(f"demo login: username {username!r} (password unchanged; "
                              "`python manage.py bootstrap_demo --reset-password` sets a new one)")
