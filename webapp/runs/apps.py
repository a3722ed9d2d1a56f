from django.apps import AppConfig
from django.conf import settings


class RunsConfig(AppConfig):
    name = "webapp.runs"
    label = "runs"

    def ready(self) -> None:
        from icm_engine.facade import load_plugins

        # Backends of one's own (ICM_BACKEND_PLUGINS: modules that register them), in the web process and in
        # every worker, so a run checked here can be built there.
        load_plugins(settings.ICM_BACKEND_PLUGINS)
