# One image for the web server, the Celery workers and the migrate step (docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE \
    ICM_CACHE_DIR=/var/cache/icm-studio ICM_VAR_DIR=/var/lib/icm-studio
WORKDIR /app

COPY pyproject.toml README.md ./
COPY icm_engine ./icm_engine
COPY webapp ./webapp
# torch==2.13.0 is pinned in pyproject; the CPU wheel index keeps the image free of CUDA libraries.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu '.[web]' \
    && useradd --system --home /app icm && mkdir -p /var/cache/icm-studio /var/lib/icm-studio \
    && chown icm /var/cache/icm-studio /var/lib/icm-studio
COPY manage.py ./
COPY templates ./templates
COPY static ./static
COPY data ./data
RUN DATABASE_URL=sqlite:////tmp/build.sqlite3 SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && rm -f /tmp/build.sqlite3

USER icm
EXPOSE 8000
CMD ["uvicorn", "webapp.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off", \
     "--no-proxy-headers", "--no-server-header", "--timeout-keep-alive", "75"]
