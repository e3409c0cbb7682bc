from django.urls import path

from bridge import views

app_name = "bridge"

urlpatterns = [
    path("conversations/<int:pk>/reply/", views.reply, name="reply"),
    path("bridge/reconciliation/", views.reconciliation, name="reconciliation"),
    path("bridge/notifications/<int:pk>/retry/", views.retry, name="retry"),
]
