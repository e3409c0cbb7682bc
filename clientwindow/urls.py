from allauth.account import views as account_views
from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.http import require_POST

from clientwindow import probes, token_views, views
from clientwindow.accounts import accept_username_field
from messaging import views as messaging_views
from messaging import webhooks

admin.site.site_header = "ClientWindow administration"
admin.site.site_title = "ClientWindow"
# The admin signs in through allauth's pages too, so with the same second factor.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

# Sign-in is allauth's (clientwindow/accounts.py), under its old names and addresses as well.
login_view = accept_username_field(account_views.LoginView.as_view())
logout_view = require_POST(account_views.LogoutView.as_view())  # no signing out by a link

handler500 = "api.problems.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", login_view, name="login"),
    path("logout/", logout_view, name="logout"),
    path("accounts/logout/", logout_view, name="account_logout"),
    path("accounts/", include("allauth.urls")),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("public-key/", views.public_key, name="public_key"),
    # browsers ask for /favicon.ico whatever the page links; answer with ours, not a 404
    path("favicon.ico", views.favicon),
    # open to load balancers and monitoring; they reveal nothing (clientwindow/probes.py)
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("ledger/", include("archive.urls")),
    path("webhooks/whatsapp/", webhooks.whatsapp, name="whatsapp_webhook"),
    path("ingestion/", messaging_views.ingestion, name="ingestion"),
    path("", include("review.urls")),
    path("", include("exports.urls")),
    path("", include("imports.urls")),
    path("", include("retention.urls")),
    path("", include("bridge.urls")),
    path("api/", include("api.urls")),
    path("tokens/", include((token_views.urlpatterns, "tokens"))),  # API tokens
    path("admin/", admin.site.urls),
]
