"""`migrate` runs as the owner role when one is configured (DATABASE_OWNER_URL, or the embedded
cluster): the runtime role may not create or alter tables, so migrating as it would fail."""

from django.core.management.base import CommandParser
from django.core.management.commands.migrate import Command as DjangoMigrate

from archive.privileges import migration_alias


class Command(DjangoMigrate):
    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=migration_alias())
