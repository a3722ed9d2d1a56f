from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .views import datasets, review, runs

urlpatterns = [
    path("auth/token/", datasets.TokenView.as_view(), name="api-token"),
    path("datasets/", datasets.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/examples/", datasets.DatasetExamplesView.as_view(), name="api-dataset-examples"),
    path("datasets/<int:pk>/labelsets/", datasets.DatasetLabelSetsView.as_view(), name="api-dataset-labelsets"),
    path("datasets/<int:pk>/export/", datasets.DatasetExportView.as_view(), name="api-dataset-export"),
    path("datasets/<int:pk>/members/", datasets.DatasetMembersView.as_view(), name="api-dataset-members"),
    path("datasets/<int:pk>/members/<int:user_id>/", datasets.DatasetMemberDetailView.as_view(),
         name="api-dataset-member"),
    path("labelsets/<int:pk>/", datasets.LabelSetDetailView.as_view(), name="api-labelset"),
    path("labelsets/<int:pk>/labels/", datasets.LabelSetLabelsView.as_view(), name="api-labelset-labels"),
    path("labelsets/<int:pk>/agreement/", datasets.LabelSetAgreementView.as_view(), name="api-labelset-agreement"),
    path("labelsets/<int:pk>/export/", datasets.LabelSetExportView.as_view(), name="api-labelset-export"),
    path("runs/", runs.RunListView.as_view(), name="api-runs"),
    path("runs/<int:pk>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<int:pk>/cancel/", runs.RunCancelView.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/resume/", runs.RunResumeView.as_view(), name="api-run-resume"),
    path("datasets/<int:pk>/methods/", review.MethodsView.as_view(), name="api-dataset-methods"),
    path("datasets/<int:pk>/agreement/", review.AgreementView.as_view(), name="api-agreement"),
    path("datasets/<int:pk>/agreement/export/", review.AgreementExportView.as_view(), name="api-agreement-export"),
    path("datasets/<int:pk>/verdicts/", review.VerdictsView.as_view(), name="api-verdicts"),
    path("datasets/<int:pk>/verdicts/undo/", review.VerdictUndoView.as_view(), name="api-verdicts-undo"),
    path("datasets/<int:pk>/verdicts/export/", review.VerdictsExportView.as_view(), name="api-verdicts-export"),
    path("datasets/<int:pk>/gold-corrections/", review.GoldCorrectionsView.as_view(), name="api-gold-corrections"),
    path("datasets/<int:pk>/annotations/", review.AnnotationsView.as_view(), name="api-annotations"),
    path("datasets/<int:pk>/annotations/undo/", review.AnnotationUndoView.as_view(), name="api-annotations-undo"),
    path("datasets/<int:pk>/spotchecks/", review.SpotChecksView.as_view(), name="api-spotchecks"),
    path("spotchecks/<int:pk>/", review.SpotCheckDetailView.as_view(), name="api-spotcheck"),
    path("spotchecks/<int:pk>/answers/", review.SpotCheckAnswerView.as_view(), name="api-spotcheck-answers"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
