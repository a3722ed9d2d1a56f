from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("datasets/", views.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", views.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/examples/", views.DatasetExamplesView.as_view(), name="api-dataset-examples"),
    path("datasets/<int:pk>/labelsets/", views.DatasetLabelSetsView.as_view(), name="api-dataset-labelsets"),
    path("datasets/<int:pk>/export/", views.DatasetExportView.as_view(), name="api-dataset-export"),
    path("datasets/<int:pk>/members/", views.DatasetMembersView.as_view(), name="api-dataset-members"),
    path("datasets/<int:pk>/members/<int:user_id>/", views.DatasetMemberDetailView.as_view(),
         name="api-dataset-member"),
    path("labelsets/<int:pk>/", views.LabelSetDetailView.as_view(), name="api-labelset"),
    path("labelsets/<int:pk>/labels/", views.LabelSetLabelsView.as_view(), name="api-labelset-labels"),
    path("labelsets/<int:pk>/agreement/", views.LabelSetAgreementView.as_view(), name="api-labelset-agreement"),
    path("labelsets/<int:pk>/export/", views.LabelSetExportView.as_view(), name="api-labelset-export"),
    path("runs/", views.RunListView.as_view(), name="api-runs"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="api-run"),
    path("runs/<int:pk>/cancel/", views.RunCancelView.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/resume/", views.RunResumeView.as_view(), name="api-run-resume"),
    path("datasets/<int:pk>/methods/", views.MethodsView.as_view(), name="api-dataset-methods"),
    path("datasets/<int:pk>/agreement/", views.AgreementView.as_view(), name="api-agreement"),
    path("datasets/<int:pk>/agreement/export/", views.AgreementExportView.as_view(), name="api-agreement-export"),
    path("datasets/<int:pk>/verdicts/", views.VerdictsView.as_view(), name="api-verdicts"),
    path("datasets/<int:pk>/verdicts/undo/", views.VerdictUndoView.as_view(), name="api-verdicts-undo"),
    path("datasets/<int:pk>/verdicts/export/", views.VerdictsExportView.as_view(), name="api-verdicts-export"),
    path("datasets/<int:pk>/gold-corrections/", views.GoldCorrectionsView.as_view(), name="api-gold-corrections"),
    path("datasets/<int:pk>/annotations/", views.AnnotationsView.as_view(), name="api-annotations"),
    path("datasets/<int:pk>/annotations/undo/", views.AnnotationUndoView.as_view(), name="api-annotations-undo"),
    path("datasets/<int:pk>/spotchecks/", views.SpotChecksView.as_view(), name="api-spotchecks"),
    path("spotchecks/<int:pk>/", views.SpotCheckDetailView.as_view(), name="api-spotcheck"),
    path("spotchecks/<int:pk>/answers/", views.SpotCheckAnswerView.as_view(), name="api-spotcheck-answers"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
