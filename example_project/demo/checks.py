"""A system check of the demo: with the Redis engine, a Redis must answer.

Without it, ``make demo-redis`` would start, then fail on the first request with a
traceback; ``migrate`` runs this check first and says what to do instead.
"""

from typing import Any

from django.conf import settings
from django.core import checks


def check_redis(**kwargs: Any) -> list[checks.CheckMessage]:
    # getattr: the type checker reads another project's settings (pyproject.toml).
    if getattr(settings, "DEMO_SESSION_ENGINE", "db") != "redis":
        return []
    import redis

    url: str = getattr(settings, "REDIS_URL", "")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as error:
        return [
            checks.Error(
                f"Nothing answers at REDIS_URL={url!r} ({error}).",
                hint="Start a Redis server (redis-server), or set REDIS_URL to one.",
                id="demo.E001",
            )
        ]
    return []
