"""Redis access (ElastiCache in AWS): one client per process, errors naming REDIS_URL."""

from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import redis

from .errors import CacheUnavailable
from .secrets import read_secret
from .settings import Settings, get_settings


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def create_redis(settings: Settings) -> "redis.Redis":
    password = None
    if settings.redis_auth_secret_arn:
        password = read_secret(
            settings.redis_auth_secret_arn,
            setting="REDIS_AUTH_SECRET_ARN",
            max_age=settings.secret_max_age,
            as_json=False,
        )
    return redis.Redis.from_url(
        settings.redis_url,
        password=password,
        decode_responses=True,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )


def unavailable(exc: redis.RedisError, settings: Settings) -> CacheUnavailable:
    return CacheUnavailable(f"Redis at REDIS_URL={redacted_url(settings.redis_url)} is unreachable: {exc}")


def check_redis(client: "redis.Redis", settings: Settings) -> None:
    """Raise CacheUnavailable, naming REDIS_URL, unless Redis answers a PING."""
    try:
        client.ping()
    except redis.RedisError as exc:
        raise unavailable(exc, settings) from exc


@lru_cache(maxsize=1)
def get_redis() -> "redis.Redis":
    """The process-wide Redis client (its pool is kept across warm Lambda invocations)."""
    return create_redis(get_settings())
