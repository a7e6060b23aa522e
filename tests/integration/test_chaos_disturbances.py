"""The chaos campaign's Redis disturbances, on a Redis server of the test's own: an outage loses our
keys, never the simulated gateway's ledger (a real gateway's books are not in our cache)."""

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.chaos import delete_all_but_the_ledger, restart_redis
from devstack.services import Redis
from order_saga.payment_gateway import SimulatedGateway
from tests.support.processes import free_port

CHARGE = f"{SimulatedGateway.PREFIX}:charge:o-1"
OURS = "order-saga:status:o-1"  # a key of our cache
NO_RETRY = Retry(NoBackoff(), 0)
LOOK_SECONDS = 60.0  # for the restarted server to answer (the integration tier allows 300 s)
LOOK_AGAIN_SECONDS = 0.005  # between looks: short, so the first look at the new server is early


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def charged_and_cached(server: Redis) -> redis.Redis:
    """A charge in the gateway's ledger and a key of ours; the campaign's client."""
    gateway = SimulatedGateway(redis.Redis(port=server.port, decode_responses=True))
    assert gateway.charge(order_id="o-1", amount=Decimal("12.50"), currency="EUR", token="tok_visa").approved
    client = redis.Redis(port=server.port, retry=NO_RETRY)
    client.set(OURS, "PENDING")
    return client


def test_a_restart_serves_the_ledger_from_its_first_connection_and_loses_our_keys(server: Redis) -> None:
    # Given a charge in the ledger, a key of ours, and a client that calls again the moment the
    # restarted server listens (as a saga step retrying a refund does)
    client = charged_and_cached(server)
    old_pid = server.pid()
    first_look: list[int | str] = []
    restart_failed = threading.Event()

    def look_as_soon_as_it_listens() -> None:
        reader = redis.Redis(port=server.port, retry=NO_RETRY, socket_connect_timeout=1)
        deadline = time.monotonic() + LOOK_SECONDS
        while not restart_failed.is_set():
            if time.monotonic() > deadline:
                first_look.append(f"no answer from a new Redis server within {LOOK_SECONDS:.0f}s")
                return
            try:
                with reader.pipeline(transaction=True) as both:  # one atomic look
                    both.info("server")
                    both.exists(CHARGE)
                    pid, charged = both.execute()
            except redis.ConnectionError:
                pass  # the outage: no server answers yet
            else:
                if pid["process_id"] != old_pid:
                    first_look.append(charged)
                    return
            time.sleep(LOOK_AGAIN_SECONDS)  # then look again for the new server

    looker = threading.Thread(target=look_as_soon_as_it_listens)
    looker.start()
    # When the campaign restarts Redis
    try:
        restart_redis(server, client)
    except BaseException:
        restart_failed.set()
        raise
    finally:
        looker.join()
    # Then it is a new server, whose first answer already held the charge (not restored later)
    assert server.pid() not in (None, old_pid)
    assert first_look == [1]
    # and our key is gone, the ledger kept, and nothing saved is left for a later start to load
    assert (client.exists(OURS), client.exists(CHARGE)) == (0, 1)
    assert not server.dump_file.exists()


def test_a_flush_deletes_our_keys_and_keeps_the_ledger(server: Redis) -> None:
    client = charged_and_cached(server)
    delete_all_but_the_ledger(client)
    assert (client.exists(OURS), client.exists(CHARGE)) == (0, 1)
