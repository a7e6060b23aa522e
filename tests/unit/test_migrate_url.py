"""yoyo's connection URL: plain for the local server, TLS-verified for RDS Proxy."""

from order_saga.db import Credentials
from order_saga.migrate import backend_url

CREDS = Credentials("proxy.example", 3306, "admin", "p@ss/word", "orders")


def test_url_without_a_ca_file_is_plain() -> None:
    assert backend_url(CREDS) == "mysql://admin:p%40ss%2Fword@proxy.example:3306/orders"


def test_url_with_a_ca_file_asks_pymysql_for_verified_tls() -> None:
    url = backend_url(CREDS, ca_file="/etc/pki/tls/certs/ca-bundle.crt")
    assert url.endswith("/orders?ssl_ca=%2Fetc%2Fpki%2Ftls%2Fcerts%2Fca-bundle.crt")
