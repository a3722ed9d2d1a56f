from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "webapp.accounts"
    label = "accounts"

    def ready(self) -> None:
        from . import signals, throttles  # noqa: F401  (connects the sign-in and password-change receivers)
