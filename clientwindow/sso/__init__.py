"""Single sign-on with the firm's OpenID Connect identity provider (docs/ACCOUNTS.md).

allauth's `openid_connect` provider does the protocol; this package adds what a bank's review
asks of it: every ID token's signature and nonce checked (oidc.py), roles set from the IdP's
claim at every sign-in (roles.py, adapter.py), and password sign-in switched off for all but the
break-glass accounts when LOCAL_LOGIN=0 (backends.py). config.py reads the environment for
clientwindow/settings.py and imports nothing from Django's apps.
"""
