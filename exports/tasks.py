"""django-q2 tasks of the exports app: thin wrappers over exports.jobs."""

from exports import jobs


def run_export(pk: str) -> str:
    return jobs.run_export(pk)


def expire_exports() -> int:
    """Daily: remove expired export files (their records stay)."""
    return jobs.expire_exports()
