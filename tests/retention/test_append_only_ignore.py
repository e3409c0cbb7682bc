"""retention_dispose() passes the append-only tables' statement-level triggers for its own
statements and for nothing after them (archive/models.py append_only_triggers(); the function
names every `pgtrigger_append_only_*` trigger in `pgtrigger.ignore` and puts back what was there).

As the owner role, the function's owner: the runtime role never reaches the triggers, its
privileges refuse it first (tests/retention/test_rules.py)."""

import psycopg
import pytest
from django.db import connections
from psycopg import sql

from messaging.models import Message
from tests.conftest import superuser_connect
from tests.retention.conftest import Desks, content_names, expire, new_disposition, seal, text

CLIENT = "447700900556"


def sealed(wamid: str) -> Message:
    seal(text(CLIENT, "Ignore Client", wamid, f"body of {wamid}"))
    return Message.objects.get(wamid=wamid)


@pytest.mark.parametrize("before", ["", "archive.Content:append_only"])
def test_dispose_passes_the_triggers_for_its_statements_and_restores_the_ignore(
    committed: None, desks: Desks, before: str
) -> None:
    gone, kept = sealed("wamid.ignore.gone"), sealed("wamid.ignore.kept")
    expire([gone.entry_id, kept.entry_id])
    disposition = new_disposition()
    owner = connections["owner"].settings_dict["USER"]
    with superuser_connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        with conn.transaction():
            conn.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [before])
            done = conn.execute(
                "SELECT seq FROM retention_dispose(%s::bigint[], %s)",
                [[gone.entry_id], disposition.pk],
            ).fetchall()
            assert done == [(gone.entry_id,)]
            after = conn.execute("SELECT current_setting('pgtrigger.ignore', true)").fetchone()
            assert after == (before or "{}",)
            for statement in (
                "DELETE FROM archive_content WHERE seq = %s",
                "UPDATE messaging_message SET text = '' WHERE seq = %s",
                "DELETE FROM archive_content WHERE seq = %s AND false",
            ):
                with (
                    pytest.raises(psycopg.errors.RaiseException, match="is append-only"),
                    conn.transaction(),
                ):
                    conn.execute(statement, [kept.entry_id])
    assert content_names(gone.entry_id) == set()
    assert content_names(kept.entry_id) == {"wamid", "item", "text"}
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert (gone.text, kept.text) == ("", "body of wamid.ignore.kept")
