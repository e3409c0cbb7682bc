"""The shell's links (clientwindow/templatetags/portal.py): reversed once, as {% url %} would."""

import re
from pathlib import Path

import pytest
from django.urls import reverse, set_script_prefix

from clientwindow.templatetags.portal import named_url

BASE = Path(__file__).resolve().parents[2] / "templates" / "base.html"
NAMES = re.findall(r"\{% named_url '([a-z_:]+)' %\}", BASE.read_text())


def test_the_shell_names_its_links_through_it() -> None:
    assert len(NAMES) >= 10 and "{% url" not in BASE.read_text()


@pytest.mark.parametrize("prefix", ["/", "/archive/"])
def test_each_link_is_what_url_gives_under_any_script_prefix(prefix: str) -> None:
    set_script_prefix(prefix)
    try:
        for name in NAMES:
            assert named_url(name) == reverse(name)
            assert named_url(name).startswith(prefix)
    finally:
        set_script_prefix("/")
