"""The local server's control endpoints under `/_control/`: faults on demand, the rate limit, and
the keys in flight (what a test waits on). They answer loopback clients only, without a key."""

import ipaddress
from collections.abc import Callable
from typing import Any

from . import params
from .errors import Answer, GatewayError, LoopbackOnly, ParameterInvalid, ResourceMissing, error_answer
from .faults import Faults, parse_fault
from .ratelimit import TokenBucket
from .store import Store, in_flight_keys


def require_loopback(client: str) -> None:
    if not ipaddress.ip_address(client).is_loopback:
        raise LoopbackOnly("the control endpoints answer this machine's own clients only")


def listed(data: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": data}


class Control:
    def __init__(self, store: Store, faults: Faults, rate: TokenBucket) -> None:
        self.store = store
        self.faults = faults
        self.rate = rate
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
            ("GET", "/_control/faults"): self.list_faults,
            ("POST", "/_control/faults"): self.add_fault,
            ("DELETE", "/_control/faults"): self.clear_faults,
            ("POST", "/_control/rate"): self.set_rate,
            ("GET", "/_control/in_flight"): self.in_flight,
        }

    def handle(self, method: str, path: str, raw_body: bytes, client: str) -> Answer:
        try:
            require_loopback(client)
            endpoint = self.routes.get((method, path))
            if endpoint is None:
                raise ResourceMissing(f"no control endpoint {method} {path}")
            return Answer(200, endpoint(params.json_object(raw_body)))
        except GatewayError as error:
            return error_answer(error)

    def list_faults(self, _body: dict[str, Any]) -> dict[str, Any]:
        return listed(self.faults.listed())

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        fault = parse_fault(body)
        self.faults.add(fault)
        return fault.as_json()

    def clear_faults(self, _body: dict[str, Any]) -> dict[str, Any]:
        self.faults.clear()
        return listed([])

    def set_rate(self, body: dict[str, Any]) -> dict[str, Any]:
        params.only(body, {"per_second"})
        per_second = params.required(body, "per_second")
        if not isinstance(per_second, int | float) or isinstance(per_second, bool) or per_second <= 0:
            raise ParameterInvalid("per_second must be a positive number", param="per_second")
        self.rate.set_rate(float(per_second))
        return {"per_second": per_second}

    def in_flight(self, _body: dict[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as db:
            return listed(in_flight_keys(db))
