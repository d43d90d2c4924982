"""The authorization matrix (pure): every RPC of every service has a rule, and each
role gets exactly what docs/security.md promises."""

from __future__ import annotations

import pytest

from coordinator.authz import (
    MATRIX,
    Identity,
    authorize,
    check_site_groups,
    check_stream_host,
    parse_identity,
)
from failover.v1 import admin_pb2, sync_pb2

ROLE_CERT = {
    "operator": "spiffe://failover/operator/alice",
    "viewer": "spiffe://failover/viewer/vera",
    "replica": "spiffe://failover/replica/c1",
    "sidecar": "spiffe://failover/sidecar/h1",
}
WRITE = {"Switch", "SetControl", "PutGroup", "BumpEra"}
READ = {"GetStatus", "History"}
# Expected: method -> roles allowed.
PEER = ("ForwardHealth", "CollectHealth", "PrepareToLead", "LocalStatus")
EXPECTED = {
    **{f"/failover.v1.Admin/{m}": {"operator", "replica"} for m in ("Switch", "SetControl")},
    **{f"/failover.v1.Admin/{m}": {"operator"} for m in ("PutGroup", "BumpEra")},
    **{f"/failover.v1.Admin/{m}": {"operator", "viewer", "replica"} for m in READ},
    **{f"/failover.v1.Peer/{m}": {"replica"} for m in PEER},
    "/failover.v1.Sync/Stream": {"sidecar"},
}


def _methods() -> list[str]:
    out = []
    for module, names in ((admin_pb2, ("Admin", "Peer")), (sync_pb2, ("Sync",))):
        for name in names:
            svc = module.DESCRIPTOR.services_by_name[name]
            out += [f"/{svc.full_name}/{m.name}" for m in svc.methods]
    return out


def test_every_rpc_has_a_rule_and_the_expected_one() -> None:
    methods = _methods()
    assert set(methods) == set(EXPECTED), "a new RPC needs a row in coordinator/authz.MATRIX and here"
    for m in methods:
        assert set(MATRIX[m]) == EXPECTED[m], m


@pytest.mark.parametrize("method", sorted(EXPECTED))
@pytest.mark.parametrize("role", sorted(ROLE_CERT))
def test_role_by_rpc(role: str, method: str) -> None:
    v = authorize(ROLE_CERT[role], method)
    assert v.allowed == (role in EXPECTED[method])
    if not v.allowed:
        assert f"{role}/" in v.message and method.rsplit("/", 1)[-1] in v.message


@pytest.mark.parametrize(
    "raw", [None, "", "spiffe://other/operator/alice", "operator", "root/alice", "operator/"]
)
def test_no_identity_is_denied_everything(raw: str | None) -> None:
    for m in EXPECTED:
        assert not authorize(raw, m).allowed


def test_unknown_method_is_denied_by_default() -> None:
    v = authorize(ROLE_CERT["operator"], "/failover.v1.Admin/DropEverything")
    assert not v.allowed and "no rule" in v.message


def test_operator_name_comes_from_the_certificate() -> None:
    assert authorize(ROLE_CERT["operator"], "/failover.v1.Admin/Switch").operator == "alice"
    # A replica forwarding keeps the name the first replica recorded.
    assert authorize(ROLE_CERT["replica"], "/failover.v1.Admin/Switch").operator is None
    assert authorize(ROLE_CERT["viewer"], "/failover.v1.Admin/GetStatus").operator is None


def test_cn_fallback_and_names() -> None:
    assert str(parse_identity("operator/carol")) == "operator/carol"
    assert str(parse_identity("spiffe://failover/sidecar/h-1.x")) == "sidecar/h-1.x"
    assert parse_identity("spiffe://failover/sidecar/a/b/c") is None
    assert parse_identity("spiffe://failover/operator/a/b") is None  # only sidecars carry a site
    assert parse_identity("spiffe://failover/sidecar/" + "x" * 64) is None


def test_sidecar_streams_only_as_itself() -> None:
    assert check_stream_host(ROLE_CERT["sidecar"], "h1") is None
    msg = check_stream_host(ROLE_CERT["sidecar"], "h2")
    assert msg is not None and "sidecar/h1" in msg and "'h2'" in msg
    assert check_stream_host(ROLE_CERT["operator"], "alice") is not None
    assert check_stream_host(None, "h1") is not None


def test_a_sidecar_certificate_may_name_its_site() -> None:
    ident = parse_identity("spiffe://failover/sidecar/ny4/h1")
    assert ident == Identity("sidecar", "h1", site="ny4") and str(ident) == "sidecar/ny4/h1"
    assert parse_identity("sidecar/ny4/h1") == ident  # CN form
    assert parse_identity("spiffe://failover/sidecar/h1") == Identity("sidecar", "h1")
    assert parse_identity("spiffe://failover/sidecar/NY 4/h1") is None
    # Streaming as its own host, and as its own site only.
    assert check_stream_host("spiffe://failover/sidecar/ny4/h1", "h1", "ny4") is None
    assert check_stream_host("spiffe://failover/sidecar/ny4/h1", "h1", "") is None
    msg = check_stream_host("spiffe://failover/sidecar/ny4/h1", "h1", "ld4")
    assert msg is not None and "sidecar/ny4/h1" in msg and "'ld4'" in msg


SITES = {"ny4": frozenset({"cme-orders", "ice-orders"}), "ld4": frozenset({"lse-orders"})}


def test_site_groups() -> None:
    # No map: every group, for every site (backwards compatible).
    assert check_site_groups("sidecar/ld4/h1", "ld4", ["cme-orders"], {}) is None
    assert check_site_groups("sidecar/ny4/h1", "ny4", ["cme-orders", "ice-orders"], SITES) is None
    msg = check_site_groups("sidecar/ld4/h2", "ld4", ["lse-orders", "cme-orders"], SITES)
    assert msg is not None and "sidecar/ld4/h2" in msg and "'cme-orders'" in msg and "ld4" in msg
    # A site the map does not list receives nothing; so does a sidecar without a site.
    assert check_site_groups("sidecar/sg1/h3", "sg1", ["cme-orders"], SITES) is not None
    msg = check_site_groups("sidecar/h4", "", ["cme-orders"], SITES)
    assert msg is not None and "no site" in msg
