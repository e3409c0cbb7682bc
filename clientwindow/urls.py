from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from clientwindow import probes, views
from messaging import views as messaging_views
from messaging import webhooks

admin.site.site_header = "ClientWindow administration"
admin.site.site_title = "ClientWindow"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
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
    path("", include("retention.urls")),
    path("", include("bridge.urls")),
    path("api/", include("exports.api_urls")),
    path("admin/", admin.site.urls),
]
