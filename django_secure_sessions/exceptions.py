"""Exceptions raised by django-secure-sessions.

Both subclass Django's ``SuspiciousOperation``: if one escapes a view, Django answers
400 and logs it on ``django.security.<ClassName>``, never a 500 with a traceback.
"""

from django.core.exceptions import SuspiciousOperation


class SensitiveDataError(SuspiciousOperation):
    """A key matching ``SECURE_SESSIONS_FORBIDDEN_KEYS`` was assigned to a session.

    Secrets and personal data don't belong in session state (OWASP): a session store
    is read on every request and often less protected than the database.
    """


class SessionTooLarge(SuspiciousOperation):
    """The serialized session data is larger than ``SECURE_SESSIONS_MAX_SIZE`` bytes.

    Like Django's ``RequestDataTooBig``: sessions are loaded on every request, and an
    unbounded one lets a client who can grow it slow down or exhaust the store.
    """
