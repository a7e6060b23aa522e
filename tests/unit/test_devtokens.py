"""Dev tokens: minting many at once never rewrites `.devstack/env` (a rewrite races other writers)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack import devtokens, envfile


def test_minting_tokens_on_many_threads_leaves_the_env_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an env file with other parts' settings and the dev key recorded in it
    env = tmp_path / "env"
    monkeypatch.setattr(envfile, "ENV_FILE", env)
    monkeypatch.setattr(devtokens, "KEY_DIR", tmp_path / "jwt")
    envfile.update_env(AWS_ENDPOINT_URL="http://127.0.0.1:1", MYSQL_PORT="1")
    devtokens.ensure_dev_keys()
    text, written = env.read_text(), env.stat().st_mtime_ns
    # When clients on eight threads, released together, mint five tokens each
    start = threading.Barrier(8, timeout=30)

    def mint_five(client: int) -> list[str]:
        start.wait()
        return [devtokens.mint_token(f"user-{client}-{n}") for n in range(5)]

    with ThreadPoolExecutor(8) as pool:
        tokens = [token for minted in pool.map(mint_five, range(8)) for token in minted]
    # Then every token was made and the file was not written again
    assert len(set(tokens)) == 40
    assert (env.read_text(), env.stat().st_mtime_ns) == (text, written)
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:1" in text
