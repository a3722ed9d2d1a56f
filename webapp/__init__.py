"""ICM Studio's web app (Django). It uses `icm_engine`; the engine never imports it."""

# Celery finds its app here (`celery -A webapp worker`); importing it does not import Django models.
from .celery import app as celery_app

__all__ = ["celery_app"]
