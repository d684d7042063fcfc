"""Exceptions raised by django-secure-sessions.

``SensitiveDataError`` and ``SessionTooLarge`` subclass Django's ``SuspiciousOperation``:
if one escapes a view, Django answers 400 and logs it on ``django.security.<ClassName>``,
never a 500 with a traceback. ``SessionStorageUnavailable`` escaping a view is answered
503 by ``SecureSessionMiddleware``.
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


class SessionStorageUnavailable(Exception):
    """The session storage (Redis, the database) failed, so a session could not be
    written, or this request's session could not be read and so may not be written.

    Raised by the engines' writes (saving, rotating the key, deleting) instead of the
    storage's own error (``__cause__`` holds it). ``SecureSessionMiddleware`` answers a
    request that raises it, or whose session it could not save, with ``503 Service
    Unavailable``: a change the user made is never acknowledged and then lost.
    """
