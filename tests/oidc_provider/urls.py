from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)  # the browser tests count a 404 as an error


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("favicon.ico", favicon),
]
