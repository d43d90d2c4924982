"""Config integers handed to gRPC core are bounded where they are read.

Found from outside: ``stream.max_message_bytes: 4294967296`` (in the file, or
``FAILOVER_STREAM__MAX_MESSAGE_BYTES``) got past the model and ended ``error: unexpected
error: OverflowError(...)`` with a traceback in the log when the server was built (gRPC
core takes a C int).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coordinator.config import MAX_MESSAGE_BYTES_LIMIT, CoordinatorConfig
from failover import rpc
from tests.procs import cli


def test_max_message_bytes_is_bounded_below_a_c_int() -> None:
    assert MAX_MESSAGE_BYTES_LIMIT < 2**31
    CoordinatorConfig.model_validate({"stream": {"max_message_bytes": MAX_MESSAGE_BYTES_LIMIT}})
    with pytest.raises(ValidationError, match="stream.max_message_bytes"):
        CoordinatorConfig.model_validate({"stream": {"max_message_bytes": 2**32}})


async def test_the_largest_accepted_value_builds_a_server() -> None:
    server = rpc.make_server(max_message_bytes=MAX_MESSAGE_BYTES_LIMIT)
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await server.stop(None)


def test_from_the_environment_it_is_a_config_error_exit_2() -> None:
    r = cli(
        "coordinator", "--etcd", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--id", "tb2",
        env={"FAILOVER_STREAM__MAX_MESSAGE_BYTES": "4294967296"},
    )  # fmt: skip
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "max_message_bytes" in r.stderr, r.stderr[-2000:]
