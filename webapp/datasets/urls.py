from django.urls import path

from . import views

app_name = "datasets"

urlpatterns = [
    path("datasets/", views.dataset_list, name="list"),
    path("datasets/new/", views.dataset_new, name="new"),
    path("datasets/new/confirm/", views.dataset_confirm, name="confirm"),
    path("datasets/<id:pk>/", views.dataset_detail, name="detail"),
    path("datasets/<id:pk>/examples/", views.dataset_examples, name="examples"),
    path("datasets/<id:pk>/settings/", views.dataset_settings, name="settings"),
    path("datasets/<id:pk>/labelsets/", views.dataset_labelsets, name="labelsets"),
    path("datasets/<id:pk>/labelsets/import/", views.labelset_import, name="labelset-import"),
    path("datasets/<id:pk>/labelsets/label-studio/", views.labelset_import_label_studio,
         name="labelset-import-label-studio"),
    path("datasets/<id:pk>/download/", views.dataset_download, name="download"),
    path("datasets/<id:pk>/delete/", views.dataset_delete, name="delete"),
    path("datasets/<id:pk>/members/", views.member_add, name="member-add"),
    path("datasets/<id:pk>/members/invite/", views.member_invite, name="member-invite"),
    path("datasets/<id:pk>/guidelines/", views.guidelines_update, name="guidelines"),
    path("datasets/<id:pk>/members/<id:user_id>/", views.member_update, name="member-update"),
    path("labelsets/<id:pk>/", views.labelset_detail, name="labelset"),
    path("labelsets/<id:pk>/download/", views.labelset_download, name="labelset-download"),
    path("labelsets/<id:pk>/delete/", views.labelset_delete, name="labelset-delete"),
]
