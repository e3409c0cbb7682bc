"""A real OpenID Connect provider for the tests: django-oauth-toolkit in a second process.

serve.py runs it on 127.0.0.1 (sqlite in a temporary directory); fixtures.py starts it once per
test session. Its directory of people is a JSON file the tests rewrite (directory.json: each
user's `groups` claim, and a `mode` that makes it issue bad ID tokens, signed for real).
"""
