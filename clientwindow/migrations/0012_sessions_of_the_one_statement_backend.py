"""Sessions signed in with a password name their backend, and settings now name
`access.backends.ModelBackend` (Django's, reading the user with their roles in one statement)
where they named `django.contrib.auth.backends.ModelBackend`. Django signs out a session whose
backend is not in AUTHENTICATION_BACKENDS, so the sessions open at the upgrade are moved to the
new name (and back, if the migration is reversed) instead of being signed out."""

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import migrations
from django.utils import timezone

DJANGOS = "django.contrib.auth.backends.ModelBackend"
OURS = "access.backends.ModelBackend"


def rename_backend(apps, old: str, new: str, using: str = "default") -> int:
    """Every unexpired session signed in through `old` now names `new`; how many."""
    sessions = apps.get_model("sessions", "Session").objects.using(using)
    codec = SessionStore()  # the same signing salt as access.session_store's SessionStore
    moved = 0
    for session in sessions.filter(expire_date__gt=timezone.now()).iterator():
        data = codec.decode(session.session_data)  # {} if it no longer verifies
        if data.get(BACKEND_SESSION_KEY) == old:
            data[BACKEND_SESSION_KEY] = new
            session.session_data = codec.encode(data)
            session.save(using=using, update_fields=["session_data"])
            moved += 1
    return moved


def forwards(apps, schema_editor):
    rename_backend(apps, DJANGOS, OURS, schema_editor.connection.alias)


def backwards(apps, schema_editor):
    rename_backend(apps, OURS, DJANGOS, schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0011_import_roles"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
