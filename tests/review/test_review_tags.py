from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from review.templatetags.review_tags import conversation_url, preview


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_it_gives_a_conversation_the_address_reverse_gives(pk: int) -> None:
    assert conversation_url(pk) == reverse("review:conversation", args=[pk])


@given(st.text(), st.integers(min_value=1, max_value=200))
def test_it_previews_a_text_as_truncatechars_would(text: str, length: int) -> None:
    shown = preview(text, length)
    assert len(shown) <= length
    if len(text) <= length:
        assert shown == text
    else:
        assert shown == text[: length - 1] + "…"
