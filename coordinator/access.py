"""Enforces coordinator/authz.py on every RPC of an mTLS server: one interceptor.

The interceptor wraps each method's handler so the check runs with the call's
context (where the verified peer certificate is): a denied call ends with
PERMISSION_DENIED naming the identity and the action, is logged and counted;
an allowed operator action has its ``operator`` field replaced by the
certificate's name before the servicer sees it. Installed only when the
server runs with mTLS; in insecure mode every call is allowed, as before.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from coordinator.authz import authorize
from failover.log_limit import OUTSIDE_INPUT
from failover.rpc import Behaviour, HandlerWrapper, run_behaviour
from failover.tls import peer_uri_or_cn

log = logging.getLogger(__name__)


class Denials:
    """Denied calls counted by (identity, method), for status and metrics."""

    def __init__(self) -> None:
        self.by_caller: Counter[tuple[str, str]] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_caller.values())


class AuthzInterceptor(HandlerWrapper):
    def __init__(self, denials: Denials | None = None) -> None:
        super().__init__()
        self.denials = denials or Denials()

    def wrap(self, method: str, behavior: Behaviour) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            raw = peer_uri_or_cn(context)
            verdict = authorize(raw, method)
            if not verdict.allowed:
                self.denials.by_caller[(raw or "", method)] += 1
                log.warning("denied: %s", verdict.message, extra=OUTSIDE_INPUT)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, verdict.message)
            if verdict.operator is not None and hasattr(request, "operator"):
                request.operator = verdict.operator
            return await run_behaviour(behavior, request, context)

        return guarded
