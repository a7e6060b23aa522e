"""`python -m devstack.gateway --port P --data-dir DIR [--rate R]`: the local payment gateway
until SIGTERM; its first start writes the account's API key to DIR/api-key."""

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from .server import create_server

DEFAULT_RATE = 200.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.gateway", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="the port on 127.0.0.1")
    parser.add_argument("--data-dir", type=Path, required=True, help="the store and the api-key file")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="requests per second of the account")
    args = parser.parse_args(argv)
    server = create_server(args.port, args.data_dir, args.rate)

    def stop(_signal: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever to return

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"gateway: listening on {server.url}, store in {args.data_dir}", flush=True)
    server.serve_forever()
    server.server_close()
    print("gateway: stopped", flush=True)


if __name__ == "__main__":
    main()
