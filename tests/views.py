"""Views for the tests that go through the whole middleware stack (see tests/urls.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from django_secure_sessions import revoke_session
from django_secure_sessions.backends.base import SecureSessionBase


@login_required
def whoami(request: HttpRequest) -> HttpResponse:
    """The signed-in user's name; anonymous visitors are sent to log in."""
    return HttpResponse(request.user.get_username())


@login_required
async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(user.get_username())


def poll(request: HttpRequest) -> HttpResponse:
    """What a page polls in the background: who is signed in, if anyone."""
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


def add_to_cart(request: HttpRequest) -> HttpResponse:
    """A view that changes the session (anonymous or not)."""
    cart = [*request.session.get("cart", []), "book"]
    request.session["cart"] = cart
    return HttpResponse(",".join(cart))


def revoke_own_session(request: HttpRequest) -> HttpResponse:
    """A request during which its own session is revoked, as by an administrator at
    that very moment: after the middleware loaded the session, before it records the
    request's activity."""
    session = request.session
    assert isinstance(session, SecureSessionBase)
    assert session.session_id is not None
    revoke_session(session.session_id)
    return HttpResponse("still answered")
