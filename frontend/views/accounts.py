"""Account pages: sign-up, log-in and out, the profile (with the API token and the wallets),
password change and reset, and the e-mail confirmation link."""

from __future__ import annotations

from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST
from django.views.generic import FormView
from rest_framework.authtoken.models import Token

from common.errors import DomainError
from frontend.forms import LoginForm, ProfileForm, SignUpForm
from frontend.views.common import PageError, signed_in_user
from frontend.views.wallet import wallets_context
from marketplace.models import User
from marketplace.services.accounts import (
    api_token_regenerate,
    email_verification_send,
    password_reset_mail_send,
    user_profile_update,
)
from marketplace.services.accounts import email_verify as email_verify_service


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("frontend:catalogue")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        email_verification_send(user=user)
        messages.success(
            request,
            f"Welcome, {user.username}. Your account is ready. We sent a link to {user.email}: follow it to "
            "confirm your address before you submit a dataset for review.",
        )
        return redirect("frontend:catalogue")
    return render(request, "frontend/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class _FormErrorIs400(FormView):
    """A form sent back with errors answers 400, as every other page form here does."""

    def form_invalid(self, form: BaseForm) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PasswordChangeView(_FormErrorIs400, auth_views.PasswordChangeView):
    """Django's own view; an account made by signing in with a wallet has no password yet and
    sets one without the old one."""

    template_name = "registration/account_password_change.html"
    success_url = reverse_lazy("frontend:profile")

    def get_form_class(self):
        return PasswordChangeForm if signed_in_user(self.request).has_usable_password() else SetPasswordForm

    def form_valid(self, form: BaseForm) -> HttpResponse:
        messages.success(self.request, "Password changed. Your other signed-in sessions were signed out.")
        return super().form_valid(form)


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form; the mail goes out through the accounts service (one per account every few
    minutes, logged like every e-mail the site sends)."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        password_reset_mail_send(
            user=context["user"], subject=subject, message=loader.render_to_string(email_template_name, context)
        )


class PasswordResetView(_FormErrorIs400, auth_views.PasswordResetView):
    """The e-mail's link is built from SITE_URL, never from the request's Host header (which a
    client chooses), so a forged Host cannot send a reset link to another site."""

    template_name = "registration/account_password_reset.html"
    form_class = PasswordResetForm
    email_template_name = "registration/account_password_reset_email.txt"
    subject_template_name = "registration/account_password_reset_subject.txt"
    success_url = reverse_lazy("frontend:password-reset-done")

    def get_extra_email_context(self) -> dict[str, str]:
        return {"site_url": settings.SITE_URL.rstrip("/")}

    def dispatch(self, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.extra_email_context = self.get_extra_email_context()
        return super().dispatch(*args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/account_password_reset_done.html"


class PasswordResetConfirmView(_FormErrorIs400, auth_views.PasswordResetConfirmView):
    template_name = "registration/account_password_reset_confirm.html"
    success_url = reverse_lazy("frontend:password-reset-complete")

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        # Whoever can read the account's mail may log in again at once: lift the account's lockout.
        axes_reset(username=form.user.get_username().lower())
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/account_password_reset_complete.html"


def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the confirmation e-mail; works signed in or not (another browser, a phone)."""
    try:
        user = email_verify_service(token=token)
    except DomainError as exc:
        error = PageError(exc.code, exc.detail, exc.status)
        return render(request, "frontend/error.html", {"error": error}, status=exc.status)
    messages.success(request, f"Thank you: {user.email} is confirmed.")
    return redirect("frontend:profile" if request.user.is_authenticated else "frontend:login")


@require_POST
@login_required
def email_verify_resend(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if user.email_verified:
        messages.info(request, "Your e-mail address is already confirmed.")
    elif not user.email:
        messages.error(request, "Add an e-mail address to your profile first.")
    elif email_verification_send(user=user):
        messages.success(request, f"We sent a new confirmation link to {user.email}.")
    else:
        messages.error(
            request,
            "We could not send a link just now: one went out in the last few minutes, or the mail server did "
            "not answer. Check your inbox (and spam folder), or try again in a few minutes.",
        )
    return redirect("frontend:profile")


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    signed_in = signed_in_user(request)
    form = ProfileForm(request.POST or None, instance=signed_in)
    if request.method == "POST" and form.is_valid():
        user = user_profile_update(
            user=signed_in, **{k: form.cleaned_data.get(k, "") for k in ("email", "organisation", "bio")}
        )
        if user.email and not user.email_verified:
            messages.success(request, f"Profile saved. Confirm {user.email} with the link we sent to it.")
        else:
            messages.success(request, "Profile saved.")
        return redirect("frontend:profile")
    token = Token.objects.filter(user=signed_in).first()
    return render(
        request,
        "frontend/profile.html",
        {"form": form, "token": token, **wallets_context(signed_in)},
        status=400 if form.errors else 200,
    )


@require_POST
@login_required
def token_regenerate(request: HttpRequest) -> HttpResponse:
    api_token_regenerate(user=signed_in_user(request))
    messages.success(request, "New API token created. The previous token no longer works.")
    return redirect("frontend:profile")
