"""The example project's URLs, plus the test server's clock (tests/clock.py)."""

from django.urls import include, path

from tests import clock

urlpatterns = [
    path("__e2e__/clock/", clock.advance_clock),
    path("", include("demo.urls")),
]
