"""The sign-in page, limited like the API's token endpoint (throttles.py): per client address and per account."""

from __future__ import annotations

from django import forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .throttles import LoginThrottle, account_wait, retry_after


def too_many(request: HttpRequest, wait: float, what: str) -> HttpResponse:
    seconds = retry_after(wait)
    response = render(request, "429.html", {"what": what, "seconds": seconds}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        throttle = LoginThrottle()
        if not throttle.allow_request(request, self):
            return too_many(request, throttle.wait() or throttle.duration, "from this address")
        wait = account_wait(request.POST.get("username", ""))
        if wait:
            return too_many(request, wait, "for this account")
        return super().post(request, *args, **kwargs)


class PasswordSetView(auth_views.PasswordResetConfirmView):
    """An invited member's one-time link. Concurrent submissions of one link set the password once: the user's
    row is locked and the token checked again inside the transaction, so the second finds the link spent."""

    template_name = "registration/password_set.html"

    def form_valid(self, form):
        token = self.request.session.get(auth_views.INTERNAL_RESET_SESSION_TOKEN)
        with transaction.atomic():
            locked = type(self.user).objects.select_for_update().get(pk=self.user.pk)
            if not token or not self.token_generator.check_token(locked, token):
                self.validlink = False
                return self.render_to_response(self.get_context_data(form=form), status=400)
            return super().form_valid(form)


class InvitationForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


@login_not_required
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, key: str) -> HttpResponse:
    """An invitation link (webapp.datasets.invitations): choose a username and password, and join."""
    from webapp.datasets.invitations import accept_invitation, open_invitation

    found = open_invitation(key)
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = accept_invitation(key=key, username=form.cleaned_data["username"],
                                     password=form.cleaned_data["password1"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error("password1" if field == "password" else field, messages)
        else:
            login(request, user, backend="webapp.accounts.backends.CaseInsensitiveModelBackend")
            return redirect("datasets:detail", pk=found.dataset_id)
    return render(request, "registration/invitation.html", {"invitation": found, "form": form},
                  status=400 if form.errors else 200)
