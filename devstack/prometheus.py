"""Debian's Prometheus against the local stack (`order-saga up --with-prometheus`).

It runs the repository's own configuration (observability/prometheus.yml, with its alert rules)
with two local changes: the edge's metrics port of this stack as the target, and a short scrape
interval, so a demo's orders show within seconds. Its data lives under `.devstack/prometheus/`.
"""

import os
from typing import Any

import yaml

from .paths import REPO_ROOT
from .services import LocalServer, find_binary, http_ok

CONFIG = REPO_ROOT / "observability" / "prometheus.yml"
LOCAL_SCRAPE_INTERVAL = "2s"


class PrometheusServer(LocalServer):
    name = "prometheus"
    binary = "prometheus"
    port_setting = "DEVSTACK_PROMETHEUS_PORT"
    programs = ("prometheus",)

    def __init__(self, port: int, metrics_port: int) -> None:
        super().__init__(port)
        self.metrics_port = metrics_port
        self.config = self.home / "prometheus.yml"

    def local_config(self) -> dict[str, Any]:
        config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
        config["global"] |= {
            "scrape_interval": LOCAL_SCRAPE_INTERVAL,
            "evaluation_interval": LOCAL_SCRAPE_INTERVAL,
        }
        config["rule_files"] = [str(CONFIG.parent / name) for name in config.get("rule_files", [])]
        for job in config["scrape_configs"]:
            for group in job.get("static_configs", []):
                group["targets"] = [f"127.0.0.1:{self.metrics_port}"]
        return config

    def prepare(self) -> None:
        super().prepare()
        self.config.write_text(yaml.safe_dump(self.local_config(), sort_keys=False))

    def command(self) -> list[str]:
        return [
            str(find_binary(self.binary)),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=2d",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_healthy(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def env(self) -> dict[str, str]:
        return {"PROMETHEUS_URL": self.url}


def prometheus_server() -> PrometheusServer:
    return PrometheusServer(
        int(os.environ.get("DEVSTACK_PROMETHEUS_PORT", "9090")),
        int(os.environ.get("DEVSTACK_METRICS_PORT", "9464")),
    )
