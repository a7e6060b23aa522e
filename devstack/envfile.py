"""`.devstack/env`: the connection settings of every running part, as KEY=value lines."""

import os

from dotenv import dotenv_values, load_dotenv

from .paths import ENV_FILE


def read_env() -> dict[str, str]:
    return {key: value for key, value in dotenv_values(ENV_FILE).items() if value is not None}


def update_env(**values: str) -> None:
    """Set these keys in the env file, keeping the others (each part of the stack adds its own)."""
    merged = read_env() | values
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text("".join(f"{key}={value}\n" for key, value in sorted(merged.items())))
    ENV_FILE.chmod(0o600)


def remove_env(*keys: str) -> None:
    """Drop these keys from the env file (a part of the stack that stopped takes its settings along)."""
    if ENV_FILE.exists():
        kept = {key: value for key, value in read_env().items() if key not in keys}
        ENV_FILE.write_text("".join(f"{key}={value}\n" for key, value in sorted(kept.items())))


def server_environment() -> dict[str, str]:
    """The environment a server of the stack starts with: this process's, less its `AWS_`
    settings. The stack's servers reach the stack's AWS endpoint with the stack's credentials
    (`.devstack/env`), whatever the caller's shell or a benchmark had set: an inherited
    AWS_ENDPOINT_URL_SFN or AWS_PROFILE would otherwise send their calls elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}


def load_env() -> None:
    """Make the running stack's settings the defaults of this process (explicit variables win)."""
    load_dotenv(ENV_FILE, override=False)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
