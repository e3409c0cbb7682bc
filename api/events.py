"""(being written for issue 19)"""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
