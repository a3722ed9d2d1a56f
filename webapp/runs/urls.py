from django.urls import path

from . import views

app_name = "runs"

urlpatterns = [
    path("datasets/<int:pk>/runs/", views.run_list, name="list"),
    path("datasets/<int:pk>/runs/new/", views.run_new, name="new"),
    path("datasets/<int:pk>/runs/panel/", views.run_panel, name="panel"),
    path("datasets/<int:pk>/runs/estimate/", views.run_estimate, name="estimate"),
    path("runs/<int:pk>/", views.run_detail, name="detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:pk>/resume/", views.run_resume, name="resume"),
]
