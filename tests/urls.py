from django.contrib import admin
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.urls import include, path

from tests import clock, reauth_views, views

urlpatterns = [
    path("admin/", admin.site.urls),
    # settings.LOGIN_URL; the template is tests/templates/registration/login.html.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("whoami/", views.whoami),
    path("async/whoami/", views.async_whoami),
    path("poll/", views.poll),
    path("cart/add/", views.add_to_cart),
    path("revoke-own-session/", views.revoke_own_session),
    path("notes/", views.notes),
    path("notes/<str:name>/", views.write_note),
    path("accounts/password/", PasswordChangeView.as_view(success_url="/whoami/")),
    # The clock of a server started with LIVE_CLOCK=1 (tests/clock.py); 409 otherwise.
    path("clock/", clock.advance_clock),
    path("account/sessions/", include("django_secure_sessions.urls")),
    # Sensitive pages behind the re-authentication window (tests/test_reauth.py).
    path("sensitive/email/", reauth_views.change_email),
    path("sensitive/delete/", reauth_views.delete_account),
    path("sensitive/api-keys/", reauth_views.ApiKeysView.as_view()),
    path("async/sensitive/email/", reauth_views.async_change_email),
    path("async/sensitive/delete/", reauth_views.async_delete_account),
    path("async/sensitive/api-keys/", reauth_views.AsyncApiKeysView.as_view()),
]
