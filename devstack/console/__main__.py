"""`python -m devstack.console`: serve the console on 127.0.0.1 (CONSOLE_PORT) until SIGTERM."""

from .server import serve

serve()
