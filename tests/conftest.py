"""The test world: a test database created and migrated by the owner role, used by the runtime
role exactly as in production, and a superuser connection for tests that play the attacker."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from access import roles
from scripts import localdev

# Under pytest-xdist every worker (gw0, gw1 ...) has a test database of its own: the workers run
# at once, and each empties, truncates and inspects its database as if it were alone. xdist sets
# PYTEST_XDIST_WORKER before a worker imports anything, so modules importing TEST_DB see it too.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_DB = f"clientwindow_test_{_WORKER}" if _WORKER else "clientwindow_test"
# No per-example deadline: a property's first example pays for imports, URL resolvers and
# template loading (263 ms against the default 200 ms on a busy machine), and a timing is a
# benchmark's business, never a test's (tests/performance).
hypothesis_settings.register_profile("clientwindow", deadline=None)
# `pytest --hypothesis-profile=thorough`: ten times the examples, for a search by hand (a
# property's own @settings(max_examples=…) still wins).
hypothesis_settings.register_profile("thorough", deadline=None, max_examples=1000)
hypothesis_settings.load_profile("clientwindow")
pytest_plugins = ["tests.s3", "tests.tsa"]
pytest_plugins += ["tests.witness"]  # the loopback witness (cosignature tests)


def pytest_configure(config: pytest.Config) -> None:
    if _WORKER:
        _own_cluster(config)
    elif getattr(config.option, "numprocesses", None):
        _create_local_keys()


def _own_cluster(config: pytest.Config) -> None:
    """An xdist worker in a throwaway run (`make test`) also has a PostgreSQL cluster of its own,
    not only a database: some of what the tests check spans the cluster. The events feed serves
    an event once no transaction older than it runs (api/events.py), and transaction ids are the
    cluster's: another worker's test transaction, in another database, would hold the feed back.
    The worker's cluster takes the place of the one `localdev.py throwaway` gave, here and in
    every process a test starts (they take DATABASE_* from the environment)."""
    outer = os.environ.get(localdev.THROWAWAY_DIR)
    if not outer:
        return  # a database server of the developer's: the workers share it
    stack = contextlib.ExitStack()
    config.add_cleanup(stack.close)
    cluster = stack.enter_context(
        localdev.throwaway_cluster(Path(outer) / localdev.NESTED / _WORKER)
    )
    os.environ.update(localdev.database_env(cluster))
    for alias, variable in (("default", "DATABASE_URL"), ("owner", "DATABASE_OWNER_URL")):
        if alias in settings.DATABASES:
            parsed = dj_database_url.parse(os.environ[variable])
            settings.DATABASES[alias].update({key: parsed[key] for key in CONNECTION_KEYS})
            connections[alias].close()


CONNECTION_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")  # not CONN_MAX_AGE and the like


def _create_local_keys() -> None:
    """The xdist controller creates the local run's keys under var/ (made on first use by a
    local run) before any worker starts: two workers creating them at once could each write one,
    a transcript key of one with the other's certificate, or read a key half written."""
    from archive import checkpoints
    from exports import pdf_sign

    if settings.LEDGER_SIGNING_KEY_AUTOCREATE:
        checkpoints.signing_key()
    if settings.TRANSCRIPT_SIGNING_AUTOCREATE:
        pdf_sign.load()


def _libpq(alias: str, dbname: str) -> dict[str, Any]:
    conf = settings.DATABASES[alias]
    return {
        "host": conf["HOST"],
        "port": conf["PORT"] or None,
        "user": conf["USER"],
        "password": conf.get("PASSWORD") or None,
        "dbname": dbname,
        "autocommit": True,
    }


def superuser_connect(dbname: str = TEST_DB) -> psycopg.Connection:
    """A superuser connection: it bypasses privileges and (with replica role) triggers."""
    conf = dj_database_url.parse(os.environ["DATABASE_SUPERUSER_URL"])
    return psycopg.connect(
        host=conf["HOST"],
        port=conf["PORT"] or None,
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        dbname=dbname,
        autocommit=True,
    )


# The planner sees the statistics a test makes itself (ANALYZE of its own table) or none: never
# what autovacuum sampled in the middle of the run from rows another test had committed (a
# transactional test), which decided between two indexes for tests that read a plan, and did so
# only when the run was slow enough (a loaded machine) for autovacuum's minute to pass.
NO_AUTOVACUUM = """
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind = 'r'
    LOOP
        EXECUTE format(
            'ALTER TABLE %s SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)', t
        );
    END LOOP;
END $$
"""


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        runtime = settings.DATABASES["default"]["USER"]
        with psycopg.connect(**_libpq("owner", "postgres")) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEST_DB)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DB)))
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(TEST_DB))
            )
            conn.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    sql.Identifier(TEST_DB), sql.Identifier(runtime)
                )
            )
            if settings.DATABASE_AUDITOR_ROLE:
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(TEST_DB), sql.Identifier(settings.DATABASE_AUDITOR_ROLE)
                    )
                )
        for alias in ("default", "owner"):
            connections[alias].close()
            connections[alias].settings_dict["NAME"] = TEST_DB
            settings.DATABASES[alias]["NAME"] = TEST_DB
        call_command("migrate", database="owner", verbosity=0)
        with connections["owner"].cursor() as cursor:
            cursor.execute(NO_AUTOVACUUM)
        connections["owner"].close()
        yield
        for alias in ("default", "owner"):
            connections[alias].close()
        with psycopg.connect(**_libpq("owner", "postgres")) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEST_DB))
            )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Tests only: production keeps Django's PBKDF2 default, which is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def private_media_root(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test writes into the developer's var/media (a task publishing a checkpoint, a media
    fetch): the records store of every test is a directory of its own unless it sets one."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def second_factor_not_required(settings: Any) -> None:
    """Tests sign in with force_login and no second factor; production's default is "all".
    tests/clientwindow/test_mfa.py and tests/e2e/test_mfa.py set MFA_REQUIRED themselves."""
    settings.MFA_REQUIRED = "off"


@pytest.fixture(autouse=True)
def fresh_sign_in_limits() -> None:
    """allauth counts sign-ins per address in the cache (and spent TOTP codes), and every test
    signs in from 127.0.0.1: each test starts with no count, whatever ran before it."""
    cache.clear()


@pytest.fixture
def make_user(db: None) -> Any:
    def make(username: str, *role_names: str) -> User:
        user = User.objects.create_user(username, password="correct horse battery staple")
        user.groups.set(Group.objects.filter(name__in=role_names))
        return user

    return make


@pytest.fixture
def admin_user(make_user: Any) -> User:
    user = make_user("ada", roles.ADMINISTRATOR)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def reviewer(make_user: Any) -> User:
    return make_user("rey", roles.REVIEWER)


@pytest.fixture
def auditor(make_user: Any) -> User:
    return make_user("aud", roles.AUDITOR)


@pytest.fixture
def legal(make_user: Any) -> User:
    return make_user("lee", roles.LEGAL)


@pytest.fixture
def outsider(make_user: Any) -> User:
    return make_user("otto")


# Every record table references one of these; CASCADE empties those with them.
ARCHIVE_TABLES = (
    "archive_ledgerentry, archive_merklenode, archive_checkpoint, archive_verificationrun,"
    " messaging_delivery, messaging_channel, messaging_rejectedwebhook, review_lexiconscan,"
    " retention_legalhold, retention_disposition, retention_erasurerequest,"
    " retention_pendingdeletion, retention_objectlock, bridge_bridgecursor"
)


def wipe_archive() -> None:
    """As the superuser, with triggers off: what no runtime code can do."""
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"TRUNCATE {ARCHIVE_TABLES} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE archive_chainhead SET size = 0, link = %s, frontier = ''", [bytes(32)])
        conn.execute("DELETE FROM retention_retentionpolicy WHERE NOT is_default")


def wipe_task_queue() -> None:
    """The tasks a test queued and no worker ran, their results, and the wake-up marks that say
    a run of them is waiting (messaging/inbox.py): a mark left set would keep a later test from
    queueing that task, and the test that looks at the marks from seeing only its own."""
    with superuser_connect() as conn:
        conn.execute("TRUNCATE django_q_ormq, django_q_task, messaging_wakeup")


@pytest.fixture
def committed(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """For tests that need committed rows: other connections, concurrency, tampering."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connections.close_all()
            wipe_archive()
            wipe_task_queue()
