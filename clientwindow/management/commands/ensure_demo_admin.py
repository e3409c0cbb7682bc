import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError

from access.roles import ADMINISTRATOR

USERNAME = "admin"


class Command(BaseCommand):
    help = "Local runs only: create the demo administrator and print its password (once)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.LOCAL_RUN:
            raise CommandError("the demo administrator exists only in local runs")
        if User.objects.filter(username=USERNAME).exists():
            self.stdout.write(f"Demo administrator: {USERNAME} (password printed on first run)")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(USERNAME, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=ADMINISTRATOR))
        self.stdout.write(f"Demo administrator created: {USERNAME} / {password}")
