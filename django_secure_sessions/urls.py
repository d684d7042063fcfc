"""URLs of the re-authentication view and the "Your sessions" pages.

Include them under a prefix of your choice::

    (path("account/sessions/", include("django_secure_sessions.urls")),)
"""

from django.urls import path

from . import views

app_name = "secure_sessions"

urlpatterns = [
    path("", views.SessionListView.as_view(), name="list"),
    path("reauth/", views.ReauthView.as_view(), name="reauth"),
    path("revoke-others/", views.RevokeOtherSessionsView.as_view(), name="revoke_others"),
    path("<str:session_id>/revoke/", views.RevokeSessionView.as_view(), name="revoke"),
]
