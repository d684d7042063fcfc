"""Signals sent by django-secure-sessions.

Every signal is sent with keyword arguments ``request`` (the current request, or
``None`` when there is none, e.g. in a management command), ``user_id`` (the user's
primary key as a string, or ``None`` for an anonymous session) and ``session_id`` (the
public ``SessionInfo.id``). No signal ever carries the session key itself. Each is
also logged on the logger ``django_secure_sessions``.
"""

from django.dispatch import Signal

# A session ended by a timeout. Extra argument: ``reason``, ``"idle"`` or ``"absolute"``.
session_expired = Signal()

# A request did not match the session's binding. Extra arguments: ``kind`` (``"ip"`` or
# ``"user_agent"``), ``expected`` and ``actual`` (what was bound and what came in, as
# addresses or user-agent summaries; never the key).
binding_mismatch = Signal()

# A session was ended server-side before its time. Extra argument: ``reason``, e.g.
# ``"password"``, ``"deactivated"``, ``"privilege"``, ``"limit"``, ``"admin"``,
# ``"user"``, ``"command"``, ``"logout"``, ``"api"``.
session_revoked = Signal()

# A session got a new key with its data kept (login, re-authentication, privilege
# change). Extra argument: ``previous_session_id``, the public id before rotation.
session_rotated = Signal()

# The user confirmed their password on the re-authentication view.
reauth_succeeded = Signal()

# A re-authentication attempt failed. Extra argument: ``failures``, the number of the
# attempt on this session, as counted in storage (parallel attempts each get their own).
reauth_failed = Signal()
