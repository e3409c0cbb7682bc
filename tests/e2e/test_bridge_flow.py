"""Replying to a client from the transcript in a real browser: the text goes to a local server
speaking the Graph API, comes back into the transcript under the reviewer's name, and the
administrator's Bridge page lists its journal copy until the journal accepts it."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.contrib.auth.models import Permission

from bridge import dispatch
from bridge.models import Notification, Outbound, Route
from messaging.models import Channel, Delivery, Message
from messaging.sequencer import process_deliveries
from tests.bridge.conftest import PNID, TOKEN, text_body
from tests.e2e.conftest import VIEWPORT, login, screenshot

SENT: list[dict[str, Any]] = []


class Graph(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SENT.append(body)
        answer = json.dumps({"messages": [{"id": f"wamid.E2E{len(SENT)}"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def test_a_reviewer_replies_from_the_transcript(
    live_server: Any, reviewer: Any, admin_user: Any, page: Any, browser: Any, settings: Any
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.WHATSAPP_GRAPH_URL = f"http://127.0.0.1:{server.server_port}/v25.0"
    SENT.clear()
    channel = Channel.objects.create(
        name="Private banking", phone_number_id=PNID, access_token=TOKEN
    )
    Route.objects.create(channel=channel, journal_address="journal@archive.bank.example")
    body = text_body("Can you call me?", wamid="wamid.E2E-IN", timestamp=int(time.time()))
    Delivery.objects.create(body=body)  # as the webhook stores it
    process_deliveries()
    conversation = Message.objects.get(wamid="wamid.E2E-IN").conversation
    reviewer.user_permissions.add(Permission.objects.get(codename="reply_to_client"))

    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/conversations/{conversation.pk}/")
    box = page.locator("section.replybox")
    box.wait_for()
    assert "window is open" in box.inner_text()
    page.fill("#reply-text", "Of course, I will call you at 3 pm.")
    page.click("section.replybox button:has-text('Send')")
    page.wait_for_selector(".notice:has-text('Sent on WhatsApp and archived')")
    outgoing = page.locator("li.msg.out")
    outgoing.wait_for()
    assert "I will call you at 3 pm" in outgoing.inner_text()
    assert "(from the portal)" in outgoing.inner_text()
    screenshot(page, "bridge-reply")

    (request,) = SENT
    assert request["to"] == conversation.participant.wa_id
    assert request["text"]["body"] == "Of course, I will call you at 3 pm."
    sent = Outbound.objects.get()
    assert sent.user == reviewer and sent.state == "sent" and sent.source == "portal"

    dispatch.plan()  # both messages wait for the journal (nothing sends them in this test)
    assert Notification.objects.filter(kind="journal", state="pending").count() == 2
    admin = browser.new_context(viewport=VIEWPORT).new_page()
    login(admin, live_server, admin_user)
    admin.click("nav.sections >> text=Bridge")
    journal = admin.locator("#journal tbody tr")
    journal.first.wait_for()
    assert journal.count() == 2
    assert "journal@archive.bank.example" in journal.first.inner_text()
    screenshot(admin, "bridge-reconciliation")
    server.shutdown()
