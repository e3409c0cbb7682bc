from django.urls import path

from exports import views

app_name = "exports"

urlpatterns = [
    path("exports/", views.export_list, name="list"),
    path("exports/new/", views.create, name="create"),
    path("exports/<uuid:pk>/", views.detail, name="detail"),
    path("exports/<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("exports/<uuid:pk>/retry/", views.retry, name="retry"),
    path("exports/<uuid:pk>/download/", views.download, name="download"),
]
