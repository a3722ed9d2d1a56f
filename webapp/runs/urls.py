from django.urls import path

from . import views

app_name = "runs"

urlpatterns = [
    path("datasets/<id:pk>/runs/", views.run_list, name="list"),
    path("datasets/<id:pk>/runs/new/", views.run_new, name="new"),
    path("datasets/<id:pk>/runs/panel/", views.run_panel, name="panel"),
    path("datasets/<id:pk>/runs/estimate/", views.run_estimate, name="estimate"),
    path("runs/<id:pk>/", views.run_detail, name="detail"),
    path("runs/<id:pk>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<id:pk>/resume/", views.run_resume, name="resume"),
]
