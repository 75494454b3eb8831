from django.apps import AppConfig


class CachegateHookConfig(AppConfig):
    name = "cachegate_hook"
    label = "cachegate_hook"

    def ready(self):
        # After Django configured logging, so the project's LOGGING cannot drop the handler.
        from . import exceptions

        exceptions.install()
