from django.apps import AppConfig


class CgappConfig(AppConfig):
    name = "cgapp"

    def ready(self):
        from django.core.signals import got_request_exception

        from . import exceptions

        got_request_exception.connect(exceptions.log_exception)
