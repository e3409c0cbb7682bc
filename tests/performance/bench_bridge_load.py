"""The load process of the bridge benchmark: one signed text message per webhook POST, open loop.

Run as a separate OS process by tests/performance/test_bench_bridge.py, with one JSON argument:

    python -m tests.performance.bench_bridge_load '{"rate": 50, "seconds": 60, ...}'

and writes its result as JSON to the file named by "out". Message i is scheduled at
t0 + i / rate (after `warmup` seconds sent the same way); a scheduler thread hands it to a pool
of client threads (each with its own http.client connection, tests/performance/bench_load.py's
Client) at that moment. Each body is shaped as tests/bridge/conftest.py `text_body` builds it
(one message, its contact) and its text carries a unique token, "bench-000123", which the
benchmark finds in the emails.

Clients: each message has its own client (wa_id) unless `repeat_share` > 0: then that share of
the messages, drawn at random, comes from `repeat_clients` fixed clients (their bursts may share
one notification email).

The result: for every message [token, client wa_id, warm-up?, scheduled, sent, answered, status],
all times time.time() (comparable with the benchmark's clock and PostgreSQL's on this machine),
plus errors and how late the scheduler handed requests out.
"""

import json
import queue
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.performance.bench_load import Client, percentiles, sign


def text_body(config: dict[str, Any], text: str, wamid: str, sender: str, name: str) -> bytes:
    message = {
        "from": sender,
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": config["display_number"],
            "phone_number_id": config["phone_number_id"],
        },
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [message],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": config["waba_id"], "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def build(config: dict[str, Any]) -> list[tuple[str, str, bytes, str]]:
    """(token, wa_id, body, signature) for every message, warm-up first."""
    rng = random.Random(config.get("seed", 7))
    total = int((float(config["warmup"]) + float(config["seconds"])) * float(config["rate"]))
    share, repeaters = float(config.get("repeat_share", 0)), int(config.get("repeat_clients", 5))
    prefix = config["prefix"]
    prepared = []
    for n in range(total):
        token = f"bench-{n:06d}"
        if share and rng.random() < share:
            k = rng.randrange(repeaters)
            wa_id, name = f"44779{k:07d}", f"Repeat Client {k}"
        else:
            wa_id, name = f"44770{n:07d}", f"Client {n}"
        text = f"Please call me about the portfolio, ref {token} (thanks)."
        wamid = f"wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgg{prefix}{n:010d}QzBBRjk3NDRCMDgA"
        body = text_body(config, text, wamid, wa_id, name)
        prepared.append((token, wa_id, body, sign(body, config["secret"])))
    return prepared


def main() -> None:
    config = json.loads(sys.argv[1])
    prepared = build(config)
    rate, warm = float(config["rate"]), int(float(config["warmup"]) * float(config["rate"]))
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    results: list[list[Any]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        client = Client(config["host"], config["port"], config["path"], config["secret"])
        while (job := jobs.get()) is not None:
            i, scheduled = job
            token, wa_id, body, signature = prepared[i]
            sent = time.time()
            try:
                status = client.post(body, signature)
            except Exception as exc:  # counted, never fatal: the figures must show it
                status = 0
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done = time.time()
            with lock:
                results.append([token, wa_id, i < warm, scheduled, sent, done, status])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(config["connections"])]
    for thread in threads:
        thread.start()
    start = time.time() + 0.2
    for i in range(len(prepared)):
        scheduled = start + i / rate
        delay = scheduled - time.time()
        if delay > 0:
            time.sleep(delay)
        jobs.put((i, scheduled))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    results.sort(key=lambda r: r[3])
    out = {
        "messages": results,
        "errors": len([r for r in results if r[6] != 200]),
        "error_samples": errors[:3],
        "send_lag": percentiles([r[4] - r[3] for r in results]),
        "post": percentiles([r[5] - r[4] for r in results if not r[2]]),
        "first_post": results[0][4],
        "last_answer": max(r[5] for r in results),
    }
    # To a file: thousands of rows would fill a pipe nobody reads until this process exits.
    Path(config["out"]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
