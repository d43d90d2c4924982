"""Venue simulator: gateways speaking a framed TCP protocol over one shared order book.

Modules, one job each: ``protocol`` (wire codec, pure), ``book`` (shared order state,
pure), ``faults`` (fault rules, pure), ``stats`` (counters), ``core`` (cross-gateway
rules), ``session`` (one connection), ``gateway`` (one listener), ``control`` (gRPC
control service), ``config``, ``server`` (the ``Venue`` process), ``cli`` and
``testclient``. Kept import-light on purpose: a sidecar that only needs the codec
imports ``failover.wire.protocol`` without pulling in gRPC.
"""
