from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

from tests import reauth_views, views

urlpatterns = [
    path("admin/", admin.site.urls),
    # settings.LOGIN_URL; the template is tests/templates/registration/login.html.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("whoami/", views.whoami),
    path("async/whoami/", views.async_whoami),
    path("poll/", views.poll),
    path("cart/add/", views.add_to_cart),
    path("revoke-own-session/", views.revoke_own_session),
    path("account/sessions/", include("django_secure_sessions.urls")),
    # Sensitive pages behind the re-authentication window (tests/test_reauth.py).
    path("sensitive/email/", reauth_views.change_email),
    path("sensitive/delete/", reauth_views.delete_account),
    path("sensitive/api-keys/", reauth_views.ApiKeysView.as_view()),
    path("async/sensitive/email/", reauth_views.async_change_email),
    path("async/sensitive/delete/", reauth_views.async_delete_account),
    path("async/sensitive/api-keys/", reauth_views.AsyncApiKeysView.as_view()),
]
