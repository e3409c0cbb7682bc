"""The OpenID Connect login and callback (allauth includes these, see oidc.py's docstring)."""

from allauth.socialaccount import app_settings
from django.urls import include, path

from clientwindow.sso import oidc

_routes = [
    path("<str:provider_id>/login/", oidc.login, name="openid_connect_login"),
    path("<str:provider_id>/login/callback/", oidc.callback, name="openid_connect_callback"),
]
urlpatterns = [path(f"{app_settings.OPENID_CONNECT_URL_PREFIX or 'oidc'}/", include(_routes))]
