from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_secure_sessions import list_user_sessions


def home(request: HttpRequest) -> HttpResponse:
    """Who is signed in, and what the server knows of their sessions."""
    user = request.user
    sessions = list_user_sessions(user) if user.is_authenticated else []
    return render(request, "demo/home.html", {"sessions": sessions})
