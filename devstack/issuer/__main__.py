"""`python -m devstack.issuer --port P --data-dir DIR`: the local token issuer's JWKS until SIGTERM;
its keys are DIR/keys/*.pem (made by the first token minted, or by `order-saga issuer rotate-key`)."""

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from .keys import KeyRing
from .server import JWKS_PATH, IssuerServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.issuer", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="the port on 127.0.0.1")
    parser.add_argument("--data-dir", type=Path, required=True, help="the folder of the keys folder")
    args = parser.parse_args(argv)
    keys = KeyRing(args.data_dir / "keys")
    keys.signing_key()  # the pool has a key before the first fetch
    server = IssuerServer(args.port, keys)

    def stop(_signal: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever to return

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"issuer: JWKS on http://127.0.0.1:{args.port}{JWKS_PATH}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print("issuer: stopped", flush=True)


if __name__ == "__main__":
    main()
