"""Redis access (ElastiCache in AWS): one client per process, errors naming REDIS_URL.

The AUTH token comes from its secret, cached like every secret. A rotation changes it under warm
clients: a connection opened with the cached token is refused (WRONGPASS), so the token is read
afresh, once, and AUTH sent again, as db.py does for MySQL's error 1045.
"""

import threading
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.credentials import CredentialProvider

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


class AuthToken(CredentialProvider):
    """The AUTH token of REDIS_AUTH_SECRET_ARN for every new connection; `authenticate` (the
    connections' `redis_connect_func`) reads it afresh once when Redis refuses the cached one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._retrying = threading.local()  # per thread: the edge opens connections from many

    @property
    def _fresh(self) -> bool:
        return bool(getattr(self._retrying, "fresh", False))

    def get_credentials(self) -> tuple[str]:
        arn = self._settings.redis_auth_secret_arn
        assert arn is not None  # built only when the setting names a secret
        token = read_secret(
            arn,
            setting="REDIS_AUTH_SECRET_ARN",
            max_age=self._settings.secret_max_age,
            as_json=False,
            fresh=self._fresh,
        )
        return (str(token),)

    def authenticate(self, connection: Any) -> None:
        """Authenticate a new connection (and select its database); on WRONGPASS once more, with
        the token read afresh: a token still refused then is a real misconfiguration. (The refused
        connection is closed, so the second try opens it again, through this method.)"""
        if self._fresh:
            connection.on_connect()
            return
        try:
            connection.on_connect()
        except redis.AuthenticationError:
            self._retrying.fresh = True
            try:
                connection.on_connect()
            finally:
                self._retrying.fresh = False


def create_redis(settings: Settings) -> "redis.Redis":
    auth: dict[str, Any] = {}
    if settings.redis_auth_secret_arn:
        token = AuthToken(settings)
        auth = {"credential_provider": token, "redis_connect_func": token.authenticate}
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        **auth,
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
