"""`make run`'s supervisor (scripts/localdev.py), on small child commands: a full `make run`
initialises a cluster, migrates and seeds for over a minute here, so the end-to-end run (a storm
with workers killed, then two Ctrl-C) is a benchmark: tests/performance/test_bench_kill_storm.py.

Every child below is `sh` with a `sleep` of its own, as qcluster has its workers: what a child
forked must go with it."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts import localdev

ROOT = Path(__file__).resolve().parents[2]
FAMILY = "sleep 600 & wait"  # a child with a grandchild in its process group
DEAF = "trap '' TERM; sleep 600 & wait; wait"  # ...that ignores SIGTERM, as qcluster does


def group_gone(pgid: int) -> bool:
    return not localdev.group_alive(pgid)


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def launcher(var: Path, *lines: str) -> subprocess.Popen[bytes]:
    """`localdev.py supervise` in a session of its own, as a terminal's `make run` is."""
    return subprocess.Popen(
        [
            *[sys.executable, "scripts/localdev.py", "supervise", "--"],
            *(shlex.join(["sh", "-c", line]) for line in lines),
        ],
        cwd=ROOT,
        env={**os.environ, "CLIENTWINDOW_VAR_DIR": str(var)},
        start_new_session=True,
    )


def state_groups(var: Path) -> list[int] | None:
    try:
        return list(json.loads((var / "localdev.json").read_text())["groups"])
    except (OSError, ValueError, KeyError):  # not written yet, or being replaced
        return None


def groups_of(var: Path, count: int) -> list[int]:
    state = var / "localdev.json"
    wait_until(lambda: state.exists() and len(json.loads(state.read_text())["groups"]) == count)
    groups = json.loads(state.read_text())["groups"]
    wait_until(
        lambda: all(len(localdev.group_members(g)) == 2 for g in groups)
    )  # the sleeps are forked
    return groups


@pytest.fixture
def supervisor(tmp_path, monkeypatch):
    monkeypatch.setattr(localdev, "RESTART_FIRST", 0.05)
    made = localdev.Supervisor({**os.environ}, localdev.StopFlag(), tmp_path / "localdev.json")
    yield made
    made.stop()


def test_it_starts_a_killed_child_again_and_ends_what_it_left(supervisor):
    supervisor.add("worker", ["sh", "-c", FAMILY])
    killed = supervisor.children[0].process
    wait_until(lambda: len(localdev.group_members(killed.pid)) == 2)
    os.kill(killed.pid, signal.SIGKILL)
    wait_until(lambda: supervisor.tend() or supervisor.children[0].process not in (None, killed))
    assert group_gone(killed.pid)  # its sleep too
    assert supervisor.children[0].process.poll() is None


def test_it_waits_longer_each_time_a_child_fails_at_once(supervisor):
    supervisor.add("broken", ["false"])
    pauses = []
    for _ in range(3):
        wait_until(lambda: supervisor.children[0].process.poll() is not None)
        supervisor.tend()
        pauses.append(supervisor.children[0].due - time.monotonic())
        supervisor.children[0].due = 0  # skip the pause
        supervisor.tend()
    assert pauses[0] < pauses[1] < pauses[2]


def test_it_kills_a_child_that_ignores_sigterm_after_the_grace(supervisor):
    supervisor.add("deaf", ["sh", "-c", DEAF])
    pgid = supervisor.children[0].process.pid
    wait_until(lambda: len(localdev.group_members(pgid)) == 2)
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < localdev.STOP_GRACE + 1
    assert group_gone(pgid)


def test_it_stops_everything_within_10_s_when_ctrl_c_comes_twice(tmp_path):
    run = launcher(tmp_path, FAMILY, DEAF)
    groups = groups_of(tmp_path, 2)
    started = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(run.pid, signal.SIGINT)
    assert run.wait(timeout=10) == 0
    wait_until(
        lambda: all(group_gone(g) for g in groups), seconds=10 - (time.monotonic() - started)
    )
    assert not (tmp_path / "localdev.json").exists()


def test_it_ends_what_an_abandoned_run_left_and_starts_cleanly(tmp_path):
    first = launcher(tmp_path, FAMILY)
    left = groups_of(tmp_path, 1)
    os.killpg(first.pid, signal.SIGKILL)  # no clean-up at all: its child lives on
    first.wait()
    assert not group_gone(left[0])
    second = launcher(tmp_path, FAMILY)
    try:
        wait_until(lambda: group_gone(left[0]))
        # the state file names the first run's group until the second run replaces it
        wait_until(lambda: state_groups(tmp_path) not in (None, left))
        assert groups_of(tmp_path, 1) != left
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0


def test_it_refuses_to_start_while_another_run_is_alive(tmp_path):
    first = launcher(tmp_path, FAMILY)
    try:
        groups_of(tmp_path, 1)
        second = launcher(tmp_path, FAMILY)
        assert second.wait(timeout=20) != 0
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)
