"""The test IdP's claims: each user's `groups` from directory.json, and its bad-token modes.

Modes (directory.json "mode"): "wrong_audience", "wrong_nonce" and "expired" issue such ID
tokens, signed with the IdP's real key; "tampered" alters a correctly signed token's payload
after signing.
"""

import base64
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator


def directory() -> dict[str, Any]:
    return json.loads((settings.DIR / "directory.json").read_text())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Validator(OAuth2Validator):
    oidc_claim_scope = None  # every claim, whatever the scopes

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        entry = directory()["users"].get(user.username, {})
        return {
            "preferred_username": user.username,
            "email": f"{user.username}@idp.example",
            "groups": entry.get("groups", []),
        }

    def get_id_token_dictionary(self, token: Any, token_handler: Any, request: Any) -> Any:
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        mode = directory().get("mode")
        if mode == "wrong_audience":
            claims["aud"] = "another-application"
        elif mode == "wrong_nonce":
            claims["nonce"] = "another sign-in's nonce"
        elif mode == "expired":
            claims["iat"] = int((timezone.now() - timedelta(hours=2)).timestamp())
            claims["exp"] = int((timezone.now() - timedelta(hours=1)).timestamp())
        return claims, expiration

    def finalize_id_token(self, id_token: Any, token: Any, token_handler: Any, request: Any) -> str:
        signed: str = super().finalize_id_token(id_token, token, token_handler, request)
        if directory().get("mode") != "tampered":
            return signed
        header, payload, signature = signed.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["groups"] = [*claims.get("groups", []), "cw-admins"]  # what a forger would want
        return ".".join([header, _b64(json.dumps(claims).encode()), signature])
