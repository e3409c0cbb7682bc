"""Reading a header the way RFC 5322 and RFC 2047 say a mail client reads it, for the tests of
what ClientWindow writes (bridge notifications, EML, RSMF).

Python 3.11's own parser (email.policy.default) is not that reader: in an address it keeps the
space between two adjacent encoded words as part of the display name, where RFC 2047 (6.2)
says to drop it, so a long name written correctly in several encoded words reads back with
spaces inside its words. Here the raw header is unfolded, split by the legacy parser, and each
part decoded by email.header, which follows the RFC.
"""

import re
from email import message_from_bytes
from email import policy as policies
from email.header import decode_header, make_header
from email.utils import getaddresses

_FOLD = re.compile(r"\r?\n(?=[ \t])")

# The string that found it: Hypothesis's "naughty" Zalgo text (210 characters, 381 octets).
ZALGO = "Ṱ̺̺̕o͞ ̷i̲̬͇̪͙n̝̗͕v̟̜̘̦͟o̶̙̰̠kè͚̮̺̪̹̱̤ ̖t̝͕̳̣̻̪͞h̼͓̲̦̳̘̲e͇̣̰̦̬͎ ̢̼̻̱̘h͚͎͙̜̣̲ͅi̦̲̣̰̤v̻͍e̺̭̳̪̰-m̢iͅn̖̺̞̲̯̰d̵̼̟͙̩̼̘̳ ̞̥̱̳̭r̛̗̘e͙p͠r̼̞̻̭̗e̺̠̣͟s̘͇̳͍̝͉e͉̥̯̞̲͚̬͜ǹ̬͎͎̟̖͇̤t͍̬̤͓̼̭͘ͅi̪̱n͠g̴͉ ͏͉ͅc̬̟h͡a̫̻̯͘o̫̟̖͍̙̝͉s̗̦̲.̨̹͈̣"
# Names made of encoded words: a reader decodes them, so written as they are they would show as
# other text; Python 3.11 also writes them back decoded and unquoted, a forged From.
LOOKALIKES = [
    "=?utf-8?b?PHNjcmlwdD4=?=",
    "Jane =?utf-8?q?Compliance_<co@bank.example>?= Client",
    "=?utf-8?q?a=2C_b@evil.example?=",
]
# ...and words longer than a line, which Python 3.11 folds with an empty line after them.
HARD = [ZALGO, ZALGO * 2, ZALGO * 5, "x" * 1500, "y" * 80 + " " + "z" * 80, *LOOKALIKES]


def raw_headers(data: bytes, name: str) -> list[str]:
    """Every `name` header of the message, unfolded, its encoded words not decoded."""
    message = message_from_bytes(data, policy=policies.compat32)
    return [_FOLD.sub("", str(value)) for value in message.get_all(name, [])]


def decoded(text: str) -> str:
    """Unstructured header text with its encoded words decoded (RFC 2047)."""
    return str(make_header(decode_header(text)))


def mailboxes(value: str) -> list[tuple[str, str]]:
    """An address header's (display name, address) pairs, display names decoded."""
    return [(decoded(display), address) for display, address in getaddresses([value])]


def longest_line(data: bytes) -> int:
    """The longest line of the message's header block, in octets."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return max(len(line) for line in head.split(b"\r\n"))
