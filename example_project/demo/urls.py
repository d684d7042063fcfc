from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from demo import views
from django_secure_sessions.decorators import reauth_required

urlpatterns = [
    path("", views.home, name="home"),
    # Only these two of django.contrib.auth.urls: its password_change view would be a way
    # around the re-authentication that the demo's own asks for.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/email/", views.change_email, name="change_email"),
    path(
        "account/password/",
        reauth_required(views.PasswordChangeView.as_view()),
        name="password_change",
    ),
    # django-secure-sessions: "Your sessions" and the re-authentication view.
    path("account/sessions/", include("django_secure_sessions.urls")),
    path("api/poll/", views.poll, name="poll"),
    # The admin's own password change asks for no re-authentication: send it to ours.
    path("admin/password_change/", RedirectView.as_view(pattern_name="password_change")),
    path("admin/", admin.site.urls),
]
