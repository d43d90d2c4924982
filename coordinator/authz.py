"""Who may call what: identities from certificates and the role x RPC matrix (pure).

Rules:
1. An identity is read from the peer's verified certificate, never from a request
   field: the SAN URI ``spiffe://failover/<role>/<name>``, or when the certificate
   has no such URI, its CN ``<role>/<name>``. A sidecar's may also name its site:
   ``spiffe://failover/sidecar/<site>/<host>`` (CN ``sidecar/<site>/<host>``).
   Anything else is no identity.
2. Roles: ``operator`` (acts), ``viewer`` (reads), ``replica`` (a coordinator
   replica: peer RPCs, and operator requests it forwards to the leader),
   ``sidecar`` (the sync stream, as its own host only).
3. Every method has an explicit row in :data:`MATRIX`; a method without a row is
   denied (default deny), so a new RPC is closed until someone decides who may call it.
4. An operator's action is recorded under the operator's certificate name, not the
   ``operator`` field it sent. A replica forwarding an operator request keeps the
   field: the replica that received the request already replaced it.
5. A sidecar streams only as the host its certificate names, and as the site it
   names when it names one.
6. With a site map (``site_groups``), a sidecar receives only the groups listed for
   its site; a site the map does not list, or no site at all, receives nothing.
   Without a map every group is allowed (as before sites were checked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

URI_PREFIX = "spiffe://failover/"
ROLES = frozenset({"operator", "viewer", "replica", "sidecar"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

_READERS = frozenset({"viewer", "operator", "replica"})
_ACTORS = frozenset({"operator"})
_FORWARDED_ACTORS = frozenset({"operator", "replica"})
_ANYONE = frozenset(ROLES)

# Full method name -> the roles allowed to call it.
MATRIX: dict[str, frozenset[str]] = {
    "/failover.v1.Admin/GetStatus": _READERS,
    "/failover.v1.Admin/History": _READERS,
    "/failover.v1.Admin/Switch": _FORWARDED_ACTORS,
    "/failover.v1.Admin/SetControl": _FORWARDED_ACTORS,
    "/failover.v1.Admin/PutGroup": _ACTORS,
    "/failover.v1.Admin/BumpEra": _ACTORS,
    "/failover.v1.Peer/ForwardHealth": frozenset({"replica"}),
    "/failover.v1.Peer/CollectHealth": frozenset({"replica"}),
    "/failover.v1.Peer/PrepareToLead": frozenset({"replica"}),
    "/failover.v1.Peer/LocalStatus": frozenset({"replica"}),
    "/failover.v1.Sync/Stream": frozenset({"sidecar"}),
    "/grpc.health.v1.Health/Check": _ANYONE,
    "/grpc.health.v1.Health/Watch": _ANYONE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _READERS,
}
# Methods whose ``operator`` field is replaced by the caller's certificate name.
OPERATOR_RECORDED = frozenset(
    {
        "/failover.v1.Admin/Switch",
        "/failover.v1.Admin/SetControl",
        "/failover.v1.Admin/PutGroup",
        "/failover.v1.Admin/BumpEra",
    }
)


@dataclass(frozen=True)
class Identity:
    role: str
    name: str
    # The site a sidecar certificate names ("" when it names none; only sidecars have one).
    site: str = ""

    def __str__(self) -> str:
        return f"{self.role}/{self.site}/{self.name}" if self.site else f"{self.role}/{self.name}"


def parse_identity(raw: str) -> Identity | None:
    """The identity a certificate names (rule 1); None when it names none."""
    text = raw.removeprefix(URI_PREFIX) if raw.startswith(URI_PREFIX) else raw
    if "://" in text:
        return None
    role, sep, name = text.partition("/")
    site = ""
    if role == "sidecar" and "/" in name:
        site, _, name = name.partition("/")
        if not _NAME.match(site):
            return None
    if not sep or role not in ROLES or not _NAME.match(name):
        return None
    return Identity(role, name, site)


@dataclass(frozen=True)
class Verdict:
    """An authorization decision; ``operator`` is the name to record, when rule 4 applies."""

    allowed: bool
    message: str = ""
    operator: str | None = None


def authorize(raw: str | None, method: str) -> Verdict:
    """May the certificate identity ``raw`` call ``method``? (rules 1-4)"""
    ident = parse_identity(raw) if raw else None
    who = str(ident) if ident else f"unidentified certificate {raw!r}" if raw else "no certificate"
    action = method.rsplit("/", 1)[-1] or method
    allowed_roles = MATRIX.get(method)
    if ident is None or allowed_roles is None or ident.role not in allowed_roles:
        needs = "/".join(sorted(allowed_roles)) if allowed_roles else "nobody (no rule)"
        return Verdict(False, f"{who} may not call {action} ({method}): needs {needs}")
    operator = ident.name if method in OPERATOR_RECORDED and ident.role == "operator" else None
    return Verdict(True, operator=operator)


def check_stream_host(raw: str | None, host_id: str, site: str = "") -> str | None:
    """Rule 5: None when the sidecar certificate ``raw`` may stream as ``host_id`` from
    the declared ``site`` ("" = not declared), else the denial message."""
    ident = parse_identity(raw) if raw else None
    if ident is None or ident.role != "sidecar":
        return f"{ident or 'no identity'} may not stream as host {host_id!r}"
    if ident.name != host_id:
        return f"{ident} may not stream as host {host_id!r} (its certificate names {ident.name!r})"
    if ident.site and site and site != ident.site:
        return f"{ident} may not stream as site {site!r} (its certificate names {ident.site!r})"
    return None


SiteGroups = Mapping[str, frozenset[str]]


def site_groups_of(config: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """The ``site_groups`` config section as the map :func:`check_site_groups` takes."""
    return {site: frozenset(groups) for site, groups in config.items()}


def check_site_groups(who: str, site: str, groups: Iterable[str], site_groups: SiteGroups) -> str | None:
    """Rule 6: None when a sidecar of ``site`` may receive every one of ``groups``, else the
    denial message naming ``who`` (the identity) and the first group refused."""
    if not site_groups:
        return None
    if not site:
        first = next(iter(groups), "")
        return (
            f"{who} may not receive group {first!r}: its certificate names no site, "
            "and site_groups is configured (issue it as sidecar/<site>/<host>)"
        )
    allowed = site_groups.get(site, frozenset())
    for g in groups:
        if g not in allowed:
            listed = ", ".join(sorted(allowed)) if allowed else "none (site not in site_groups)"
            return f"{who} may not receive group {g!r}: site {site!r} is allowed {listed}"
    return None
