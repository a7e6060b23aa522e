"""Project-private MariaDB and Redis servers, run from Debian's packages under `.devstack/`.

Each server has its own port (so system services on 3306/6379 can run beside), its data, socket,
pid file and log in the state folder, an idempotent start that waits until the server answers,
and a stop that leaves no process behind. A start that fails shows the tail of the server's log.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import redis

from .envfile import server_environment, update_env
from .paths import STATE_DIR

# The Debian package that provides each program the local stack and its tests run.
DEBIAN_PACKAGES = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-client",
    "redis-server": "redis-server",
    "dot": "graphviz",  # lays out the console's execution graphs
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "chromium": "chromium",  # the browser tests' browser
    "chromedriver": "chromium-driver",
}
TEST_TOOLS = ("dot", "prometheus", "promtool", "chromium", "chromedriver")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ServiceError(Exception):
    """A local server could not be installed, started or stopped; the message says why."""


def find_binary(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def ensure_packages(binaries: tuple[str, ...]) -> None:
    """Install the Debian packages of the missing binaries when we may (root with apt)."""
    missing = sorted({DEBIAN_PACKAGES[name] for name in binaries if not find_binary(name)})
    if not missing:
        return
    packages = " ".join(missing)
    if os.geteuid() != 0 or not find_binary("apt-get"):
        raise ServiceError(f"missing programs; install the Debian packages: apt-get install {packages}")
    print(f"installing {packages} with apt-get ...", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class LocalServer(ABC):
    """A server process that this project starts, owns and stops."""

    name: str
    binary: str
    port_setting: str
    programs: tuple[str, ...] = ()  # what it needs installed (keys of DEBIAN_PACKAGES)

    def __init__(self, port: int, state_dir: Path | None = None) -> None:
        """`state_dir`: the folder of another stack's state (a test's own stack), else ours."""
        self.port = port
        self.home = (state_dir or STATE_DIR) / self.name
        self.pidfile = self.home / f"{self.name}.pid"
        self.logfile = self.home / f"{self.name}.log"

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def is_healthy(self) -> bool: ...

    def prepare(self) -> None:
        """Create what the server needs before its first start."""
        self.home.mkdir(parents=True, exist_ok=True)

    def after_start(self) -> None:  # noqa: B027 - a hook; most servers need nothing more
        """Bring a started server to the state the project expects (idempotent)."""

    def env(self) -> dict[str, str]:
        """The KEY=value settings through which clients reach this server."""
        return {}

    def process_env(self) -> dict[str, str]:
        """The server process's environment."""
        return server_environment()

    def pid(self) -> int | None:
        """The pid of our running server, or None (a stale pid file is ignored)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if Path(self.binary).name.encode() in cmdline else None

    def start(self) -> str:
        if self.pid() is not None and self.is_healthy():
            self.after_start()
            return f"{self.name}: already running on 127.0.0.1:{self.port}"
        self.stop()
        if port_in_use(self.port):
            raise ServiceError(
                f"{self.name}: port {self.port} is taken by another process; choose a free one with "
                f"{self.port_setting}=<port>"
            )
        self.prepare()
        with self.logfile.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - a fixed command of our own
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.process_env(),
            )
        self.pidfile.write_text(str(process.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while not self.is_healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"{self.name} did not start on port {self.port}; last lines of {self.logfile}:\n"
                    + log_tail(self.logfile)
                )
            time.sleep(0.2)
        self.after_start()
        return f"{self.name}: started on 127.0.0.1:{self.port} (pid {process.pid})"

    def stop(self) -> str:
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return f"{self.name}: not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _running(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
            return f"{self.name}: killed (still running {STOP_TIMEOUT:.0f}s after SIGTERM)"
        return f"{self.name}: stopped"


def http_ok(url: str) -> bool:
    """Whether a local HTTP server answers 200 at `url` (a health or readiness endpoint)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - our own local URL
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _running(pid: int) -> bool:
    """Whether the process still runs. A zombie does not: it has exited and closed its ports, and
    only its parent can collect it (a server started by another process, such as a test run's
    restart, waits for that process, not for us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (started by this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class MariaDB(LocalServer):
    name = "mariadb"
    binary = "mariadbd"
    port_setting = "DEVSTACK_MYSQL_PORT"
    user = "orders"
    database = "orders"

    def __init__(self, port: int, state_dir: Path | None = None) -> None:
        super().__init__(port, state_dir)
        self.datadir = self.home / "data"
        self.socket = self.home / "mariadb.sock"
        self.password_file = self.home / "password"

    def _as_user(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def prepare(self) -> None:
        super().prepare()
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18))
            self.password_file.chmod(0o600)
        if (self.datadir / "mysql").is_dir():
            return
        result = subprocess.run(  # noqa: S603
            [
                str(find_binary("mariadb-install-db")),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *self._as_user(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"mariadb-install-db failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")

    def command(self) -> list[str]:
        return [
            str(find_binary(self.binary)),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.home / 'mariadbd.pid'}",
            f"--log-error={self.logfile}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            "--default-time-zone=+00:00",  # as RDS runs MySQL: timestamps are UTC on every machine
            "--max-connections=500",
            *self._as_user(),
        ]

    def _sql(self, statement: str) -> subprocess.CompletedProcess[str]:
        """Run SQL as the server's root over its socket (the client would obey MYSQL_HOST & co.)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("MYSQL")}
        return subprocess.run(  # noqa: S603
            [
                str(find_binary("mariadb")),
                "--no-defaults",
                "--protocol=socket",
                f"--socket={self.socket}",
                "-uroot",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    def is_healthy(self) -> bool:
        return self.socket.exists() and self._sql("SELECT 1").returncode == 0

    def execute_as_root(self, statement: str) -> None:
        """Run `statement` as root: account administration the project's own user may not do."""
        result = self._sql(statement)
        if result.returncode != 0:
            raise ServiceError(f"SQL as root failed: {result.stderr.strip()}")

    def after_start(self) -> None:
        password = self.password_file.read_text().strip()
        statements = [f"CREATE DATABASE IF NOT EXISTS `{self.database}`"]
        for host in ("127.0.0.1", "localhost"):
            account = f"'{self.user}'@'{host}'"
            statements += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'",
                f"ALTER USER {account} IDENTIFIED BY '{password}'",
                # The app database and the per-run test databases (orders_test_...).
                f"GRANT ALL PRIVILEGES ON `{self.database}%`.* TO {account}",
            ]
        result = self._sql("; ".join(statements))
        if result.returncode != 0:
            raise ServiceError(f"could not create the {self.database} database and user:\n{result.stderr}")

    def env(self) -> dict[str, str]:
        return {
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(self.port),
            "MYSQL_USER": self.user,
            "MYSQL_PASSWORD": self.password_file.read_text().strip(),
            "MYSQL_DATABASE": self.database,
        }


class Redis(LocalServer):
    name = "redis"
    binary = "redis-server"
    port_setting = "DEVSTACK_REDIS_PORT"

    def command(self) -> list[str]:
        return [
            str(find_binary(self.binary)),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.home),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.logfile),
        ]  # fmt: skip

    def is_healthy(self) -> bool:
        """Our own redis-server answers on the port (not some other one that holds it)."""
        try:
            client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
            return bool(client.info("server")["process_id"] == self.pid())
        except redis.RedisError:
            return False

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": f"redis://127.0.0.1:{self.port}/0"}


def mariadb() -> MariaDB:
    return MariaDB(int(os.environ.get("DEVSTACK_MYSQL_PORT", "33306")))


def servers() -> list[LocalServer]:
    return [
        mariadb(),
        Redis(int(os.environ.get("DEVSTACK_REDIS_PORT", "36379"))),
    ]


def services_up() -> list[str]:
    ensure_packages((MariaDB.binary, "mariadb-install-db", "mariadb", Redis.binary))
    lines = []
    for server in servers():
        lines.append(server.start())
        update_env(**server.env())
    return lines


def services_down() -> list[str]:
    return [server.stop() for server in servers()]


def services_status() -> dict[str, bool]:
    return {server.name: server.pid() is not None and server.is_healthy() for server in servers()}
