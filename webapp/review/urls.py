from django.urls import path

from . import views

app_name = "review"

urlpatterns = [
    path("datasets/<int:pk>/review/", views.queue, name="queue"),
    path("datasets/<int:pk>/review/verdict/", views.verdict, name="verdict"),
    path("datasets/<int:pk>/review/undo/", views.undo, name="undo"),
    path("datasets/<int:pk>/review/adjudicate/", views.adjudicate, name="adjudicate"),
    path("datasets/<int:pk>/review/verdicts/download/", views.verdicts_export, name="verdicts-download"),
    path("datasets/<int:pk>/gold/corrections/", views.corrections, name="corrections"),
    path("datasets/<int:pk>/agreement/", views.dashboard, name="dashboard"),
    path("datasets/<int:pk>/agreement/download/", views.dashboard_export, name="dashboard-download"),
    path("datasets/<int:pk>/spotchecks/", views.spot_checks, name="spotchecks"),
    path("datasets/<int:pk>/spotchecks/new/", views.spot_check_new, name="spotcheck-new"),
    path("spotchecks/<int:pk>/", views.spot_check, name="spotcheck"),
    path("spotchecks/<int:pk>/answer/", views.spot_check_answer, name="spotcheck-answer"),
    path("spotchecks/<int:pk>/result/", views.spot_check_result, name="spotcheck-result"),
    path("spotchecks/<int:pk>/correct/", views.spot_check_correct, name="spotcheck-correct"),
    path("datasets/<int:pk>/annotate/", views.annotate, name="annotate"),
    path("datasets/<int:pk>/annotate/label/", views.annotate_label, name="annotate-label"),
    path("datasets/<int:pk>/annotate/undo/", views.annotate_undo, name="annotate-undo"),
]
