"""allauth's OpenID Connect provider, with the ID token checks a bank's review expects.

allauth 65 skips the ID token's signature when the token came straight from the token endpoint
(OIDC Core 3.1.3.7 allows it over TLS), sends no nonce and checks none. Here every ID token is
checked in full: signature against the IdP's JWKS (asymmetric algorithms only), iss, aud (and
azp), exp, iat, the nonce this sign-in sent, and that userinfo speaks of the same subject. The
state is allauth's: one use, kept in the session. The discovery document must name the issuer
it was configured with (OIDC Discovery 4.3).

allauth builds the provider's URLs from its class's package, so urls.py here routes the
login and callback to these views (SOCIALACCOUNT_PROVIDERS' provider_class names Provider).
"""

import json
import secrets
from typing import Any

import jwt
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp, SocialLogin, SocialToken
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from requests import RequestException

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY_SECONDS = 60  # clock skew between the IdP and us


class Refused(OAuth2Error):  # type: ignore[misc]  # allauth is untyped
    """An answer from the IdP we will not sign anyone in on; the message says why, in English."""


def _issuer(url: str) -> str:
    return url.split("/.well-known/", 1)[0].rstrip("/")


class Adapter(OpenIDConnectOAuth2Adapter):  # type: ignore[misc]  # allauth is untyped
    state: dict[str, Any] | None = None  # this sign-in's stashed state (CallbackView sets it)

    @property
    def openid_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().openid_config
        expected = _issuer(self.get_provider().app.settings["server_url"])
        if _issuer(str(config.get("issuer", ""))) != expected:
            raise Refused("the identity provider's discovery document names another issuer")
        return config

    def complete_login(
        self, request: HttpRequest, app: SocialApp, token: SocialToken, **kwargs: Any
    ) -> SocialLogin:
        id_token = kwargs["response"].get("id_token")
        if not isinstance(id_token, str):
            raise Refused("the identity provider sent no ID token")
        claims = self._decode_id_token(app, id_token)
        userinfo = self._fetch_user_info(token.token)
        if not isinstance(userinfo, dict) or userinfo.get("sub") != claims["sub"]:
            raise Refused("the identity provider's user information is for another subject")
        login: SocialLogin = self.get_provider().sociallogin_from_response(
            request, {"userinfo": userinfo, "id_token": claims}
        )
        return login

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict[str, Any]:
        claims = verify_id_token(
            id_token,
            jwks=self._jwks(),
            issuer=self.openid_config["issuer"],
            client_id=app.client_id,
        )
        expected_nonce = (self.state or {}).get("nonce")
        if not expected_nonce or not secrets.compare_digest(
            str(claims.get("nonce", "")), expected_nonce
        ):
            raise Refused("the ID token's nonce is not this sign-in's")
        try:
            jwtkit.verify_jti(claims)
        except OAuth2Error:
            raise Refused("the ID token was already used") from None
        return claims

    def _jwks(self) -> dict[str, Any]:
        with get_adapter().get_requests_session() as session:
            response = session.get(self.openid_config["jwks_uri"])
            response.raise_for_status()
            keys: dict[str, Any] = response.json()
        return keys


def verify_id_token(
    token: str, *, jwks: dict[str, Any], issuer: str, client_id: str
) -> dict[str, Any]:
    """The ID token's claims, once its signature, iss, aud/azp, exp and iat hold; else Refused."""
    try:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Refused(f"the ID token is signed with {algorithm!r}, which is not accepted")
        matching = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
        if len(matching) != 1:
            raise Refused("the ID token is signed with a key the identity provider does not list")
        key = jwt.PyJWK(matching[0], algorithm=algorithm)
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidSignatureError:
        raise Refused("the ID token's signature does not verify") from None
    except jwt.ExpiredSignatureError:
        raise Refused("the ID token has expired") from None
    except jwt.InvalidAudienceError:
        raise Refused("the ID token was issued to another application") from None
    except jwt.InvalidIssuerError:
        raise Refused("the ID token was issued by another identity provider") from None
    except (jwt.PyJWTError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        raise Refused(f"the ID token is malformed ({type(e).__name__})") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise Refused("the ID token was issued to another application")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Refused("the ID token names no subject")
    return claims


class Provider(OpenIDConnectProvider):  # type: ignore[misc]  # allauth is untyped
    oauth2_adapter_class = Adapter

    def get_oauth2_adapter(self, request: HttpRequest) -> Adapter:
        return Adapter(request, self.app.provider_id)

    def redirect(
        self,
        request: HttpRequest,
        process: Any,
        next_url: str | None = None,
        data: Any = None,
        **kwargs: Any,
    ) -> HttpResponse:
        """Send a fresh nonce with every sign-in; it is kept in the state, used once."""
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None) or self.get_auth_params()
        auth_params["nonce"] = nonce
        response: HttpResponse = super().redirect(
            request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs
        )
        return response


class CallbackView(OAuth2CallbackView):  # type: ignore[misc]  # allauth is untyped
    adapter: Adapter

    def _get_state(self, request: HttpRequest, provider: Any) -> Any:
        state, response = super()._get_state(request, provider)
        self.adapter.state = state
        return state, response


def _run(
    view_class: type[OAuth2LoginView] | type[CallbackView], request: HttpRequest, provider_id: str
) -> HttpResponse:
    """Run allauth's view; an IdP that is down or answers nonsense is a refusal, not a 500."""
    try:
        adapter = Adapter(request, provider_id)
        response: HttpResponse = view_class.adapter_view(adapter)(request)
        return response
    except SocialApp.DoesNotExist:
        raise Http404("No such identity provider") from None
    except (OAuth2Error, RequestException, KeyError, ValueError) as e:
        error: HttpResponse = render_authentication_error(
            request, adapter.get_provider(), exception=e
        )
        return error


@login_not_required
def login(request: HttpRequest, provider_id: str) -> HttpResponse:
    return _run(OAuth2LoginView, request, provider_id)


@login_not_required
def callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    return _run(CallbackView, request, provider_id)
