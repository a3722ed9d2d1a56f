"""The sign-in page, rate limited like the API's token endpoint."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from .throttles import LoginThrottle


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        throttle = LoginThrottle()
        if not throttle.allow_request(request, self):
            wait = throttle.wait() or 60
            response = HttpResponse(f"Too many sign-in attempts from this address; try again in {wait:.0f} s.",
                                    status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(int(wait) + 1)
            return response
        return super().post(request, *args, **kwargs)
