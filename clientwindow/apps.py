from django.apps import AppConfig


class ClientWindowConfig(AppConfig):
    name = "clientwindow"
    verbose_name = "ClientWindow"
