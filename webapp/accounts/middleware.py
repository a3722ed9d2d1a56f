from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.shortcuts import render


class LoginRequiredPagesMiddleware(LoginRequiredMiddleware):
    """Pages redirect anonymous users to the login page; the API answers 401/403 through DRF instead."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class MethodNotAllowedPageMiddleware:
    """A page opened with a method it does not take (a GET on a form's target) gets a page that says so, not
    Django's empty 405; the API answers in JSON itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 405 and not response.content and not request.path_info.startswith("/api/"):
            allowed = response.get("Allow", "")
            page = render(request, "405.html", {"allowed": " or ".join(allowed.split(", ")) or "other methods"},
                          status=405)
            page["Allow"] = allowed
            return page
        return response
