from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .binding import FAMILY_MAX_LENGTH, IP_MAX_LENGTH


class SecureSession(models.Model):
    """A session of the ``django_secure_sessions.backends.db`` engine.

    The primary key is a one-way digest of the session key (see
    ``backends.base.session_id_for_key``): the key itself is never stored.
    """

    id = models.CharField(_("session id"), max_length=40, primary_key=True, editable=False)
    # Signed JSON (signature + payload, see backends.base.sign()), compressed with zlib
    # (see backends.db.signed_text()).
    data = models.BinaryField(_("session data"))
    # No database constraint: a session may outlive a deleted user by a moment, and a
    # save must not fail because of it. Deleting a user through the ORM still deletes
    # their sessions (on_delete runs in Python).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,  # covered by the (user, expire_date) index
        related_name="+",
    )
    created = models.DateTimeField(_("created"))
    last_activity = models.DateTimeField(_("last activity"))
    last_auth = models.DateTimeField(_("last authentication"), null=True, blank=True)
    absolute_expiry = models.DateTimeField(_("absolute expiry"), null=True, blank=True)
    expire_date = models.DateTimeField(_("expires"), db_index=True)
    ip = models.CharField(_("IP address"), max_length=IP_MAX_LENGTH, blank=True)
    ua_digest = models.CharField(_("user agent digest"), max_length=32, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    browser = models.CharField(_("browser"), max_length=FAMILY_MAX_LENGTH, blank=True)
    os = models.CharField(_("operating system"), max_length=FAMILY_MAX_LENGTH, blank=True)
    device = models.CharField(_("device"), max_length=FAMILY_MAX_LENGTH, blank=True)
    # How the session began: see backends.base.SessionMeta.origin.
    origin = models.CharField(_("origin"), max_length=16, blank=True, default="")
    # Re-authentication attempts since the key was last rotated: only ever incremented
    # in the database (see backends.db.SessionStore._count_attempt), never saved from a
    # request's copy of the session.
    reauth_attempts = models.PositiveIntegerField(
        _("re-authentication attempts"), default=0, editable=False
    )

    objects: ClassVar[models.Manager[SecureSession]] = models.Manager()

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        indexes = [models.Index(fields=["user", "expire_date"], name="secure_sess_user_expiry")]
        permissions = [("revoke_session", _("Can revoke sessions"))]

    def __str__(self) -> str:
        return self.id


class UserReauthAttempts(models.Model):
    """A user's re-authentication attempts, across all of their sessions, in the
    current window (``SECURE_SESSIONS_REAUTH_USER_MAX_FAILURES``); the db engine's
    counterpart of a Redis counter. One row per user, updated in place."""

    # No database constraint, for the reason given on SecureSession.user.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        primary_key=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    window_start = models.DateTimeField(_("window start"), db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    objects: ClassVar[models.Manager[UserReauthAttempts]] = models.Manager()

    class Meta:
        verbose_name = _("re-authentication attempts of a user")
        verbose_name_plural = _("re-authentication attempts of users")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.attempts}"
