from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="datasets:list", permanent=False)),
    path("accounts/", include("webapp.accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("webapp.api.urls")),
    path("", include("webapp.datasets.urls")),
    path("", include("webapp.runs.urls")),
    path("", include("webapp.review.urls")),
]
