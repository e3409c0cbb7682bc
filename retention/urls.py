from django.urls import path

from retention import views

app_name = "retention"

urlpatterns = [
    path("retention/", views.policies, name="policies"),
    path("retention/preview/", views.preview, name="preview"),
    path("retention/dispose/", views.dispose, name="dispose"),
    path("retention/dispositions/<int:pk>/approve/", views.approve, name="approve"),
    path("retention/dispositions/<int:pk>/reject/", views.reject, name="reject"),
    path("holds/", views.hold_list, name="holds"),
    path("holds/new/", views.hold_create, name="hold_create"),
    path("holds/<int:pk>/", views.hold_detail, name="hold"),
    path("holds/<int:pk>/change/", views.hold_change, name="hold_change"),
    path("holds/<int:pk>/release/", views.hold_release, name="hold_release"),
    path("gdpr/", views.gdpr, name="gdpr"),
    path("gdpr/erasure/", views.erasure_create, name="erasure_create"),
    path("gdpr/record-of-processing/", views.record_page, name="record_of_processing"),
    path("gdpr/record-of-processing.pdf", views.record_pdf, name="record_of_processing_pdf"),
]
