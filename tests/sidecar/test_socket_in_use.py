"""A sidecar never removes a socket another process is listening on.

Found from outside: a second copy of a running sidecar (the same config, started by hand)
unlinked the running one's strategy socket as "stale", bound its own, then failed on its
TCP port and exited: the running sidecar kept listening on an unlinked inode, every
strategy got NO_PATH ("the sidecar is not reachable"), and the cluster still showed the
host healthy. A socket file of ours is now removed only when nothing accepts a connection
on it; one that answers is refused (exit 2 at start).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from failover_sidecar.app import SocketError, prepare_socket


def test_a_socket_someone_listens_on_is_refused_and_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "h1.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        live.bind(path)
        live.listen()
        with pytest.raises(SocketError, match="in use"):
            prepare_socket(path)
        assert Path(path).exists()
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(path)  # still the running one's
        probe.close()
    finally:
        live.close()


def test_a_stale_socket_of_ours_is_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "h1.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays; nobody listens: what a killed sidecar leaves
    prepare_socket(path)
    assert not Path(path).exists()
