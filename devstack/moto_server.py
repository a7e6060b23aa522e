"""The local AWS endpoint: moto in server mode, executing the real state machines.

Run as `python -m devstack.moto_server` by `order-saga aws up` (see devstack/aws.py). Before
serving it turns on moto's Step Functions execution (moto runs the ASL with its bundled
interpreter), points the interpreter's own AWS calls at this server (MOTO_PORT), and installs
the local Lambda invoker in place of moto's Docker runner.

Optionally the Retry waits of the interpreter are scaled (DEVSTACK_RETRY_TIME_SCALE, 1 = real
time): a compensation that "retries long" waits minutes in AWS, which a test run cannot afford.
Only the sleep between attempts is scaled; task timeouts, Lambda timeouts and the order of
events stay real.
"""

import argparse
import os
import signal
import sys
import threading
import time
from types import ModuleType
from typing import Any

from .aws import AwsStackSettings
from .invoker import LocalInvoker, base_environment, install


class ScaledClock:
    """`time` as the interpreter's retrier sees it: the same clock, shorter sleeps."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def scale_retry_waits(scale: float) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415

    module: ModuleType = retrier_decl
    if getattr(module, "time", None) is not time:
        raise RuntimeError(
            "moto's Step Functions retrier no longer sleeps through its module's `time`: the pinned "
            "moto changed; find where Retry waits before upgrading moto"
        )
    module.time = ScaledClock(scale)  # type: ignore[attr-defined]


def without_docker() -> None:
    """There is no Docker engine here: moto's lazily made Docker client is None, not an error.

    Only the Docker runner (replaced by the invoker) would use it; this lets /moto-api/data.json
    list moto's models (for instance the e-mails SES accepted) instead of failing on it.
    """
    from moto.utilities.docker_utilities import DockerModel  # noqa: PLC0415

    DockerModel.docker_client = property(lambda _model: None)  # type: ignore[assignment,method-assign]


def enable_execution() -> None:
    from moto.core.config import default_user_config  # noqa: PLC0415

    default_user_config["stepfunctions"] = {"execute_state_machine": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int)
    parser.add_argument("--retry-time-scale", type=float)
    args = parser.parse_args()
    overrides = {"moto_port": args.port, "retry_time_scale": args.retry_time_scale}
    settings = AwsStackSettings(**{key: value for key, value in overrides.items() if value is not None})
    # The interpreter calls Lambda and SQS at localhost:$MOTO_PORT: it must be this server.
    os.environ["MOTO_PORT"] = str(settings.moto_port)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    enable_execution()
    without_docker()
    if settings.retry_time_scale != 1:
        scale_retry_waits(settings.retry_time_scale)
    invoker = LocalInvoker(base_env=base_environment(settings.endpoint_url, settings.region))
    install(invoker)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=settings.moto_port, verbose=False)
    stop = threading.Event()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"moto server on {settings.endpoint_url} (Step Functions execution on)", flush=True)
    stop.wait()
    invoker.shutdown()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
