from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from .views import LoginView, PasswordSetView

urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # An invited member's one-time link (datasets.memberships.invite_member): they choose their password.
    path("set-password/<uidb64>/<token>/", PasswordSetView.as_view(success_url=reverse_lazy("password-set-done")),
        name="password-set"),
    path("set-password/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="registration/password_set_done.html"), name="password-set-done"),
    path("password/", auth_views.PasswordChangeView.as_view(
        template_name="registration/password_change.html", success_url=reverse_lazy("password-change-done")),
        name="password-change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="registration/password_change_done.html"), name="password-change-done"),
]
