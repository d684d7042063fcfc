"""A project's own confirmation step routed in place of the package's re-authentication
view, as docs/howto/sensitive-actions.rst shows (tests/test_reauth.py uses it as
ROOT_URLCONF)."""

from django.urls import include, path

from django_secure_sessions import urls as secure_sessions_urls
from tests import reauth_views

# The package's URLs, with the re-authentication view replaced: same namespace and name,
# so reauth_required and ReauthRequiredMixin send users to it.
secure_sessions_patterns = [
    path("reauth/", reauth_views.CodeReauthView.as_view(), name="reauth"),
    *(pattern for pattern in secure_sessions_urls.urlpatterns if pattern.name != "reauth"),
]

urlpatterns = [
    path("account/sessions/", include((secure_sessions_patterns, "secure_sessions"))),
    path("sensitive/email/", reauth_views.change_email),
]
