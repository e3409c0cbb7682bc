"""django-q2 tasks for chat imports: thin wrappers over imports/pipeline.py, taking primary keys."""

from . import pipeline


def analyse_task(job_id: int) -> None:
    pipeline.analyse(job_id)


def import_task(job_id: int) -> None:
    pipeline.run_import(job_id)


def resume_imports() -> int:
    """Schedule: resume the jobs a dead worker left queued or running (run_import claims a job
    only once its previous run's lease has lapsed, so a live run is never doubled)."""
    return pipeline.resume_stalled()
