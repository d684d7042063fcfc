from django.conf import settings
from django.http import HttpRequest


def demo(request: HttpRequest) -> dict[str, str]:
    """Which session engine the demo runs on, for the page footer."""
    # getattr: the type checker reads another project's settings (pyproject.toml).
    return {"demo_session_engine": getattr(settings, "DEMO_SESSION_ENGINE", "db")}
