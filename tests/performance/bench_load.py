"""The load process of the capture benchmarks: Meta-shaped, signed webhook POSTs (stdlib only).

Run as a separate OS process by tests/performance/test_bench_capture.py, with one JSON argument:

    python tests/performance/bench_load.py '{"mode": "steady", ...}'

and prints one JSON line of results on stdout. Two modes:

- "steady": open loop. Request i is scheduled at t0 + i / rate; a scheduler thread hands it to a
  pool of client threads (each with its own keep-alive http.client connection) at that moment.
  Latency is measured from the *scheduled* time to the end of the response (so a server or client
  backlog counts against us: no coordinated omission), and also from the actual send ("service").
  The first `warmup` seconds are sent at the same rate and left out of the figures.
- "burst": closed loop, as fast as possible: `connections` threads each take the next prepared
  body and POST it, until all are sent. Reports the wall-clock time of the first POST and of the
  last answer (time.time(), comparable with the benchmark's own clock on this machine).

Bodies: one entry whose `changes` each carry one text message and its contact (as Meta batches
several updates into one POST), `per_delivery` messages per body, unique wamids, clients drawn
from a fixed pool so conversations repeat. Everything is built and signed before the clock starts.
The pool is `clients` numbers of the bench's own, or `contacts` ([wa_id, name] pairs): an
archive's existing clients, so that the run writes to conversations the archive already holds.
"""

import hashlib
import hmac
import http.client
import json
import queue
import random
import sys
import threading
import time
from typing import Any

TEXTS = [
    "Good morning, could you send me the latest statement for the growth portfolio?",
    "Also, I'd like to move €50,000 into the bond fund we discussed last week.",
    "Thanks! 👍",
    "Can we schedule a call on Thursday afternoon to review the allocation?",
    "Please confirm the transfer instruction I sent by email this morning.",
    "Is the dividend from the European equity fund paid out or reinvested?",
    "Merci, je regarde les documents ce soir et je reviens vers vous.",
    "ありがとうございます。明日また連絡します。",
    "I'm travelling next week; WhatsApp is the best way to reach me.",
    "What would the tax impact be if we sold the remaining tech position before year end?",
]
NAMES = [
    "Amelia Hart",
    "Étienne Laurent",
    "佐藤 花子",
    "Jonas Berg",
    "Priya Natarajan",
    "Liam Chen",
]


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_bodies(config: dict[str, Any]) -> list[bytes]:
    """`count` bodies of `per_delivery` text messages each, with unique wamids."""
    rng = random.Random(config.get("seed", 1))
    prefix, clients = config["prefix"], int(config.get("clients", 500))
    contacts = [(str(w), str(n)) for w, n in config.get("contacts") or []]
    if contacts:
        clients = len(contacts)
    pnid, display, waba = config["phone_number_id"], config["display_number"], config["waba_id"]
    now, n = int(config.get("start") or time.time()), 0
    bodies = []
    for _ in range(int(config["count"])):
        changes = []
        for _ in range(int(config.get("per_delivery", 1))):
            client = rng.randrange(clients)
            wa_id, name = (
                contacts[client]
                if contacts
                else (f"4477009{client:05d}", NAMES[client % len(NAMES)])
            )
            message = {
                "from": wa_id,
                "id": f"wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgg{prefix}{n:010d}QzBBRjk3NDRCMDgA",
                "timestamp": str(now + n // 100),
                "type": "text",
                "text": {"body": rng.choice(TEXTS)},
            }
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": display, "phone_number_id": pnid},
                "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                "messages": [message],
            }
            changes.append({"value": value, "field": "messages"})
            n += 1
        document = {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba, "changes": changes}],
        }
        bodies.append(json.dumps(document, ensure_ascii=False).encode())
    return bodies


class Client:
    """One keep-alive connection (re-opened when the server closes it, as sync workers do)."""

    def __init__(self, host: str, port: int, path: str, secret: str) -> None:
        self.host, self.port, self.path, self.secret = host, port, path, secret
        self.conn: http.client.HTTPConnection | None = None
        self.opened = 0

    def post(self, body: bytes, signature: str) -> int:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.opened += 1
            try:
                self.conn.request(
                    "POST",
                    self.path,
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": signature,
                        "User-Agent": "facebookexternalua",
                    },
                )
                response = self.conn.getresponse()
                response.read()
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed in between: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def steady(config: dict[str, Any], bodies: list[tuple[bytes, str]]) -> dict[str, Any]:
    rate, warm = float(config["rate"]), int(float(config["warmup"]) * float(config["rate"]))
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    results: list[tuple[int, float, float, float, int]] = []  # (i, scheduled, sent, done, status)
    errors: list[str] = []
    lock = threading.Lock()
    clients: list[Client] = []

    def work() -> None:
        client = Client(config["host"], config["port"], config["path"], config["secret"])
        with lock:
            clients.append(client)
        while (job := jobs.get()) is not None:
            i, scheduled = job
            sent = time.perf_counter()
            try:
                status = client.post(*bodies[i])
            except Exception as exc:  # counted, never fatal: the figure must show it
                status = 0
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done = time.perf_counter()
            with lock:
                results.append((i, scheduled, sent, done, status))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(config["connections"])]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.2
    for i in range(len(bodies)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((i, scheduled))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    measured = [r for r in results if r[0] >= warm]
    ok = [r for r in measured if r[4] == 200]
    span = max(r[3] for r in measured) - min(r[1] for r in measured)
    statuses: dict[str, int] = {}
    for r in measured:
        statuses[str(r[4])] = statuses.get(str(r[4]), 0) + 1
    return {
        "sent": len(measured),
        "warmup_sent": len(results) - len(measured),
        "total_ok": sum(1 for r in results if r[4] == 200),
        "ok": len(ok),
        "errors": len(measured) - len(ok),
        "statuses": statuses,
        "error_samples": errors[:3],
        "achieved_rate": len(measured) / span if span else 0.0,
        "from_scheduled": percentiles([r[3] - r[1] for r in ok]),
        "from_sent": percentiles([r[3] - r[2] for r in ok]),
        "send_lag": percentiles([r[2] - r[1] for r in measured]),
        "connections_opened": sum(c.opened for c in clients),
    }


def burst(config: dict[str, Any], bodies: list[tuple[bytes, str]]) -> dict[str, Any]:
    position = iter(range(len(bodies)))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    marks: list[float] = []
    barrier = threading.Barrier(config["connections"] + 1)

    def work() -> None:
        client = Client(config["host"], config["port"], config["path"], config["secret"])
        barrier.wait()
        while True:
            with lock:
                i = next(position, None)
                if i is None:
                    return
                if not marks:
                    marks.append(time.time())
            sent = time.perf_counter()
            try:
                status = client.post(*bodies[i])
            except Exception as exc:
                status = 0
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done = time.perf_counter()
            with lock:
                latencies.append(done - sent)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

    threads = [threading.Thread(target=work) for _ in range(config["connections"])]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    last = time.time()
    return {
        "sent": len(bodies),
        "ok": statuses.get("200", 0),
        "errors": len(bodies) - statuses.get("200", 0),
        "statuses": statuses,
        "error_samples": errors[:3],
        "first_post": marks[0],
        "last_answer": last,
        "latency": percentiles(latencies),
        "body_bytes": sum(len(b) for b, _ in bodies) / len(bodies),
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    if config["mode"] == "steady":
        config["count"] = int((float(config["warmup"]) + float(config["seconds"])) * config["rate"])
    prepared = [(body, sign(body, config["secret"])) for body in build_bodies(config)]
    result = steady(config, prepared) if config["mode"] == "steady" else burst(config, prepared)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
