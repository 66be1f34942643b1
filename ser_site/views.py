from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.decorators import method_decorator

from .login_limit import blocked_message, login_blocked


def home(request: HttpRequest) -> HttpResponse:
    """The studio opens on the run list: the page people come back to most."""
    return redirect("runs:list")


class RateLimitedAuthenticationForm(AuthenticationForm):
    """Says so when sign-ins are blocked (ser_site.login_limit) instead of "did not match"."""

    def clean(self) -> dict:
        if login_blocked(self.request, self.cleaned_data.get("username") or ""):
            raise ValidationError(blocked_message(), code="too_many_failures")
        return super().clean()


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's login page; a blocked sign-in is answered 429 with the reason."""

    form_class = RateLimitedAuthenticationForm

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "too_many_failures"):
            response.status_code = 429
        return response

    def get_context_data(self, **kwargs: object) -> dict:
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if form is not None and form.is_bound and form.has_error(NON_FIELD_ERRORS, "too_many_failures"):
            context["login_blocked"] = blocked_message()
        return context
