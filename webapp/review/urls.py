from django.urls import path

from . import views

app_name = "review"

urlpatterns = [
    path("datasets/<id:pk>/review/", views.queue, name="queue"),
    path("datasets/<id:pk>/review/verdict/", views.verdict, name="verdict"),
    path("datasets/<id:pk>/review/undo/", views.undo, name="undo"),
    path("datasets/<id:pk>/review/adjudicate/", views.adjudicate, name="adjudicate"),
    path("datasets/<id:pk>/review/verdicts/download/", views.verdicts_export, name="verdicts-download"),
    path("datasets/<id:pk>/gold/corrections/", views.corrections, name="corrections"),
    path("datasets/<id:pk>/agreement/", views.dashboard, name="dashboard"),
    path("datasets/<id:pk>/agreement/download/", views.dashboard_export, name="dashboard-download"),
    path("datasets/<id:pk>/spotchecks/", views.spot_checks, name="spotchecks"),
    path("datasets/<id:pk>/spotchecks/new/", views.spot_check_new, name="spotcheck-new"),
    path("spotchecks/<id:pk>/", views.spot_check, name="spotcheck"),
    path("spotchecks/<id:pk>/answer/", views.spot_check_answer, name="spotcheck-answer"),
    path("spotchecks/<id:pk>/result/", views.spot_check_result, name="spotcheck-result"),
    path("spotchecks/<id:pk>/correct/", views.spot_check_correct, name="spotcheck-correct"),
    path("datasets/<id:pk>/annotate/", views.annotate, name="annotate"),
    path("datasets/<id:pk>/annotate/label/", views.annotate_label, name="annotate-label"),
    path("datasets/<id:pk>/annotate/undo/", views.annotate_undo, name="annotate-undo"),
]
