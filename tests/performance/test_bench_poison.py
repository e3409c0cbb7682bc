"""`make run` past a poison delivery (issue 13's "Must show"): one signed delivery the database
refuses to seal, among 1,000 good ones, posted to a real `scripts/localdev.py run` (its own
PostgreSQL with fsync on, gunicorn, the sealer, the worker). Pending must reach zero with no
manual command, every good message must be archived once, and the ingestion page must list the
poison delivery as unparsed with its reason.

The poison is a text of 170,000 distinct words: its tsvector passes PostgreSQL's 1 MB limit,
which only the insert finds out, so the sequencer's batch fails and is sealed again one
delivery at a time (messaging/sequencer.py). Before issue 13 the same batch was retried every
minute for ever and nothing after it was sealed.

    BENCH_POISON_GOOD=1000 uv run python scripts/localdev.py throwaway -- \
        uv run python -m pytest tests/performance/test_bench_poison.py -q -s -p no:randomly
"""

import http.client
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from messaging.simulator import DEMO_CHANNEL
from tests.performance.bench_load import Client, build_bodies, sign
from tests.performance.conftest import say, table
from tests.performance.test_bench_capture import WEBHOOK, free_port
from tests.performance.test_bench_kill_storm import PENDING_SQL, MakeRun

GOOD = int(os.environ.get("BENCH_POISON_GOOD", "1000"))
DRAIN = float(os.environ.get("BENCH_POISON_DRAIN", "120"))


def poison_body() -> bytes:
    """A well-formed, signed message whose text PostgreSQL cannot index."""
    words = " ".join(f"w{n:06d}" for n in range(170_000))
    template = json.loads(build_bodies({**DEMO_CHANNEL, "prefix": "poison", "count": 1})[0])
    template["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = words
    return json.dumps(template).encode()


def ingestion_page(port: int, log: str) -> str:
    """The ingestion page as the demo administrator (whose password make run printed)."""
    password = re.search(r"Demo administrator created: admin / (\S+)", log)
    assert password, "no demo administrator password in make run's output"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/login/")
    page = conn.getresponse()
    html, cookie = page.read().decode(), page.getheader("Set-Cookie", "")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    csrf = re.search(r"csrftoken=([^;]+)", cookie)
    assert token and csrf
    form = urlencode(
        {"username": "admin", "password": password[1], "csrfmiddlewaretoken": token[1]}
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={csrf[1]}",
        "Referer": f"http://127.0.0.1:{port}/login/",
    }
    conn.request("POST", "/login/", body=form, headers=headers)
    answer = conn.getresponse()
    answer.read()
    session = re.search(r"sessionid=([^;]+)", answer.getheader("Set-Cookie", ""))
    assert answer.status == 302 and session, f"login answered {answer.status}"
    conn.request("GET", "/ingestion/", headers={"Cookie": f"sessionid={session[1]}"})
    return conn.getresponse().read().decode()


def test_make_run_seals_past_a_poison_delivery() -> None:
    var = Path(tempfile.mkdtemp(prefix="cw-poison-"))
    var.chmod(0o755)  # PostgreSQL's account must reach var/pg when this runs as root
    run, log = MakeRun(var, free_port(), free_port()), var / "make-run.log"
    try:
        started_in = run.start(log)
        secret = (var / "whatsapp-app-secret").read_text().strip()
        bodies = build_bodies({**DEMO_CHANNEL, "prefix": "good", "count": GOOD, "seed": 5})
        bodies.insert(GOOD // 2, poison_body())
        client = Client("127.0.0.1", run.port, WEBHOOK, secret)
        began = time.monotonic()
        answers = [client.post(body, sign(body, secret)) for body in bodies]
        posted = time.monotonic()
        zero_after = None
        while time.monotonic() < posted + DRAIN:
            if run.sql(PENDING_SQL) == 0:
                zero_after = time.monotonic() - posted
                break
            time.sleep(0.5)
        archived = run.sql("SELECT count(*) FROM messaging_message WHERE wamid LIKE '%good%'")
        unparsed = run.sql("SELECT count(*) FROM messaging_unparseditem")
        page = ingestion_page(run.port, log.read_text(errors="replace"))
        verified = run.verify_archive()
    finally:
        if run.process is not None and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGINT)
            run.process.wait(timeout=30)
    listed = "the delivery could not be sealed: ProgramLimitExceeded" in page
    rows = [
        ["make run ready after", f"{started_in:,.1f} s"],
        ["posted", f"{len(bodies):,} deliveries in {posted - began:,.1f} s"],
        ["answers", ", ".join(f"{s}: {answers.count(s):,}" for s in sorted(set(answers)))],
        ["pending reached zero", f"{zero_after:.1f} s after the last post" if zero_after else "NO"],
        ["good messages archived", f"{archived:,} of {GOOD:,}"],
        ["unparsed items", str(unparsed)],
        ["on the ingestion page with its reason", "yes" if listed else "NO"],
        ["verify_archive", f"exit {verified.returncode}"],
    ]
    say(table(["figure", "value"], rows, title="== make run past a poison delivery"))
    assert set(answers) == {200}
    assert zero_after is not None, "pending never reached zero"
    assert archived == GOOD and unparsed == 1 and listed
    assert verified.returncode == 0
    shutil.rmtree(var, ignore_errors=True)
