from django.contrib import admin

from tests.custom_user.models import EmailUser


@admin.register(EmailUser)
class EmailUserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A project's own user admin, without fieldsets: django_secure_sessions's
    ``install_user_admin`` adds the sessions to it (this app comes first in
    INSTALLED_APPS, so it is registered by then)."""

    list_display = ("email", "full_name", "is_staff")
    search_fields = ("email", "full_name")
    exclude = ("password",)
