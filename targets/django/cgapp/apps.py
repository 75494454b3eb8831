from django.apps import AppConfig


class CgappConfig(AppConfig):
    name = "cgapp"

    def ready(self):
        # After Django configured logging, so a LOGGING in the cell's settings cannot drop it.
        from . import exceptions

        exceptions.install()
