from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from .views import datasets, invitations, review, runs
from .views.common import ApiRootView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("auth/token/", datasets.TokenView.as_view(), name="api-token"),
    path("datasets/", datasets.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<id:pk>/", datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<id:pk>/examples/", datasets.DatasetExamplesView.as_view(), name="api-dataset-examples"),
    path("datasets/<id:pk>/labelsets/", datasets.DatasetLabelSetsView.as_view(), name="api-dataset-labelsets"),
    path("datasets/<id:pk>/export/", datasets.DatasetExportView.as_view(), name="api-dataset-export"),
    path("datasets/<id:pk>/label-studio/", datasets.DatasetLabelStudioImportView.as_view(),
         name="api-dataset-label-studio"),
    path("datasets/<id:pk>/members/", datasets.DatasetMembersView.as_view(), name="api-dataset-members"),
    path("datasets/<id:pk>/members/<id:user_id>/", datasets.DatasetMemberDetailView.as_view(),
         name="api-dataset-member"),
    path("datasets/<id:pk>/invitations/", invitations.DatasetInvitationsView.as_view(),
         name="api-dataset-invitations"),
    path("datasets/<id:pk>/invitations/<id:invitation_id>/", invitations.InvitationDetailView.as_view(),
         name="api-dataset-invitation"),
    path("invitations/<str:key>/accept/", invitations.InvitationAcceptView.as_view(), name="api-invitation-accept"),
    path("labelsets/<id:pk>/", datasets.LabelSetDetailView.as_view(), name="api-labelset"),
    path("labelsets/<id:pk>/labels/", datasets.LabelSetLabelsView.as_view(), name="api-labelset-labels"),
    path("labelsets/<id:pk>/agreement/", datasets.LabelSetAgreementView.as_view(), name="api-labelset-agreement"),
    path("labelsets/<id:pk>/export/", datasets.LabelSetExportView.as_view(), name="api-labelset-export"),
    path("runs/", runs.RunListView.as_view(), name="api-runs"),
    path("runs/<id:pk>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<id:pk>/cancel/", runs.RunCancelView.as_view(), name="api-run-cancel"),
    path("runs/<id:pk>/resume/", runs.RunResumeView.as_view(), name="api-run-resume"),
    path("datasets/<id:pk>/methods/", review.MethodsView.as_view(), name="api-dataset-methods"),
    path("datasets/<id:pk>/agreement/", review.AgreementView.as_view(), name="api-agreement"),
    path("datasets/<id:pk>/agreement/export/", review.AgreementExportView.as_view(), name="api-agreement-export"),
    path("datasets/<id:pk>/verdicts/", review.VerdictsView.as_view(), name="api-verdicts"),
    path("datasets/<id:pk>/verdicts/undo/", review.VerdictUndoView.as_view(), name="api-verdicts-undo"),
    path("datasets/<id:pk>/verdicts/export/", review.VerdictsExportView.as_view(), name="api-verdicts-export"),
    path("datasets/<id:pk>/gold-corrections/", review.GoldCorrectionsView.as_view(), name="api-gold-corrections"),
    path("datasets/<id:pk>/annotations/", review.AnnotationsView.as_view(), name="api-annotations"),
    path("datasets/<id:pk>/annotations/undo/", review.AnnotationUndoView.as_view(), name="api-annotations-undo"),
    path("datasets/<id:pk>/spotchecks/", review.SpotChecksView.as_view(), name="api-spotchecks"),
    path("spotchecks/<id:pk>/", review.SpotCheckDetailView.as_view(), name="api-spotcheck"),
    path("spotchecks/<id:pk>/answers/", review.SpotCheckAnswerView.as_view(), name="api-spotcheck-answers"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the pages' CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
