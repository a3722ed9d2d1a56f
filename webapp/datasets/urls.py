from django.urls import path

from . import views

app_name = "datasets"

urlpatterns = [
    path("datasets/", views.dataset_list, name="list"),
    path("datasets/new/", views.dataset_new, name="new"),
    path("datasets/new/confirm/", views.dataset_confirm, name="confirm"),
    path("datasets/<int:pk>/", views.dataset_detail, name="detail"),
    path("datasets/<int:pk>/examples/", views.dataset_examples, name="examples"),
    path("datasets/<int:pk>/labelsets/import/", views.labelset_import, name="labelset-import"),
    path("datasets/<int:pk>/download/", views.dataset_download, name="download"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="delete"),
    path("datasets/<int:pk>/members/", views.member_add, name="member-add"),
    path("datasets/<int:pk>/members/<int:user_id>/", views.member_update, name="member-update"),
    path("labelsets/<int:pk>/", views.labelset_detail, name="labelset"),
    path("labelsets/<int:pk>/download/", views.labelset_download, name="labelset-download"),
    path("labelsets/<int:pk>/delete/", views.labelset_delete, name="labelset-delete"),
]
