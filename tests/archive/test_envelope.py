"""The envelope's canonical form is RFC 8785, checked against the rfc8785 package itself."""

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from archive.chain_check import envelope_problem
from archive.envelope import SAFE_INTEGER, canonical_json

keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,4})?", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE_INTEGER + 1, SAFE_INTEGER - 1),
    st.text(),  # every code point but lone surrogates, which Unicode text cannot hold
)
envelope_bodies = st.dictionaries(keys.filter(lambda k: not k.startswith("commit.")), scalars)
json_values = st.recursive(
    st.one_of(scalars, st.floats(allow_nan=False), st.integers()),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=6,
)


@settings(max_examples=400)
@given(envelope_bodies)
def test_it_serialises_exactly_as_rfc8785_does(body):
    assert canonical_json(body) == rfc8785.dumps(body)


@settings(max_examples=300)
@given(envelope_bodies)
def test_it_accepts_every_canonical_envelope(body):
    envelope = rfc8785.dumps(body)
    assert envelope_problem(envelope, json.loads(envelope), set()) is None


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_it_accepts_nothing_outside_the_envelope_domain(body):
    envelope = json.dumps(body).encode()
    if envelope_problem(envelope, json.loads(envelope), set()) is None:
        assert rfc8785.dumps(json.loads(envelope)) == envelope
        assert all(type(v) in (str, int, bool, type(None)) for v in body.values())


@pytest.mark.parametrize(
    ("envelope", "why"),
    [
        (b'{"n":1e+16,"v":1}', "not a string, integer"),
        (b'{"n":9007199254740993,"v":1}', "out of range"),
        (b'{"n":{"a":1}}', "not a string, integer"),
        (b'{"v":1, "n":2}', "canonical"),
        (b'{"v":1,"n":2}', "canonical"),
        (b'{"N":1}', "not allowed"),
        (b'{"commit.body":"ABC"}', "64 lowercase hex"),
        (b'["v"]', "not a JSON object"),
        (b'{"s":"\\u00e9"}', "canonical"),
    ],
)
def test_it_names_what_is_wrong_with_an_envelope(envelope, why):
    assert why in envelope_problem(envelope, json.loads(envelope), set())
