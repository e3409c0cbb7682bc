"""A group's name as its own system lines give it, for chats whose file name does not (an iOS
`_chat.txt` re-zipped under another name, a renamed Android file).

"X created group “Name”" and "X changed the subject from “Old” to “New”" (and their translations)
carry the name in quotes; the last one in the file is the name the group had when it was
exported. Matched on the shadow (imports/parsing `shadow`) of a system line only, never of a
message, so a client quoting these words is not taken for the group's name.
"""

import re

from .parsing import shadow

# The verb before the quoted name, in the languages the shared document quotes (section 6.3) and
# the app's own wording as exported by the fixtures.
_VERBS = (
    r"created group",
    r"changed the subject(?: from [“\"«„].*?[”\"»“])? to",
    r"changed the group name(?: from [“\"«„].*?[”\"»“])? to",
    r"hat die Gruppe",  # de: "hat die Gruppe „Name“ erstellt"
    r"hast die Gruppe",
    r"hat den Betreff(?: von [“\"«„].*?[”\"»“])? zu",
    r"a créé le groupe",  # fr
    r"avez créé le groupe",
    r"creó el grupo",  # es
    r"creaste el grupo",
    r"criou o grupo",  # pt
    r"criou este grupo",
    r"ha creato il gruppo",  # it
    r"heeft groep",  # nl: "heeft groep “Name” aangemaakt"
)
_SUBJECT = re.compile(
    r"(?:" + "|".join(_VERBS) + r")\s*[“\"«„](?P<name>[^”\"»“]{1,200})[”\"»“]", re.IGNORECASE
)


def subject(system_text: str) -> str | None:
    """The group name a system line gives, or None."""
    found = _SUBJECT.search(shadow(system_text))
    return found.group("name").strip() or None if found else None
