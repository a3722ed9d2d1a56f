from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

import webapp.ids  # noqa: F401  (registers the <id:name> path converter before the apps' patterns)
from webapp.accounts.views import invitation


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page's <link rel="icon"> says."""
    return redirect(static("img/favicon.svg"), permanent=True)


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="datasets:list", permanent=False)),
    path("favicon.ico", favicon),
    path("accounts/", include("webapp.accounts.urls")),
    path("invitations/<str:key>/", invitation, name="invitation"),
    path("admin/", admin.site.urls),
    path("api/", include("webapp.api.urls")),
    path("", include("webapp.datasets.urls")),
    path("", include("webapp.runs.urls")),
    path("", include("webapp.review.urls")),
]

# Under /api/ even Django's own refusals (no view matched, a body it could not read) answer in JSON.
handler400 = "webapp.api.errors.bad_request"
handler403 = "webapp.api.errors.permission_denied"
handler404 = "webapp.api.errors.not_found"
handler500 = "webapp.api.errors.server_error"
