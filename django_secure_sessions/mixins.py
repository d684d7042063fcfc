"""``ReauthRequiredMixin``: ``reauth_required`` for class-based views."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase

from .decorators import reauth_gate


class ReauthRequiredMixin:
    """Require a recent authentication before dispatching.

    ``reauth_max_age`` (seconds) overrides ``SECURE_SESSIONS_REAUTH_MAX_AGE``. Put it
    first among the bases, so it runs before the view does anything.
    """

    reauth_max_age: int | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "view_is_async", False):
            return self._adispatch(request, *args, **kwargs)
        response = reauth_gate(request, request.user, self.reauth_max_age)
        if response is not None:
            return response
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    async def _adispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = reauth_gate(request, await request.auser(), self.reauth_max_age)
        if response is not None:
            return response
        result: HttpResponseBase = await super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        return result
