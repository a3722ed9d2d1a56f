"""Django for the bench scripts that measure the web app (loadtest, scalebench): the repository root on the
path and the project's settings, so `.venv/bin/python bench/<script>.py` runs as `manage.py` would. Importing
it from an already set-up process (the test suite) changes nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def main(command_class: type, name: str) -> None:
    """Run a BaseCommand class from the script's argv, as `manage.py <name>` would (usage, errors, exit code)."""
    # Django's usage line reads "<basename of the first> <second>": here "python bench/<name>.py".
    command_class().run_from_argv(["python", f"bench/{name}.py", *sys.argv[1:]])
