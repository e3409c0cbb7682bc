"""Messages imported from a phone's chat export (imports/) reach the journal, marked as imported,
but never notify staff: they are old conversations, not clients writing now."""

from bridge import dispatch
from bridge.models import Notification
from messaging.models import Message
from tests.bridge.staff_emails import JOURNAL, journal_mail, staff_mail
from tests.imports.importing import import_chat

CHAT = "port-whatsapp-datadonation__file3_android_ddmmyyyy_crlf.txt"


def test_an_import_is_journaled_marked_and_notifies_nobody(channel, route, smtp):
    import_chat(channel, CHAT, custodian="person1")
    imported = Message.objects.filter(source="phone_export")
    assert imported.filter(direction="in").exists()  # clients wrote: staff would hear of those
    dispatch.run()
    assert not Notification.objects.exclude(kind=Notification.Kind.JOURNAL).exists()
    assert staff_mail(smtp) == []
    copies = journal_mail(smtp)
    assert len(copies) == imported.count()
    assert all(copy.rcpt_tos == [JOURNAL] for copy in copies)
    assert all(copy.message["X-ClientWindow-Source"].startswith("phone-export") for copy in copies)
