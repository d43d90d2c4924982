"""Proofs that a replica pushed a decision at an epoch (pure).

A sidecar's hello names the epoch it holds per group, and a held epoch etcd no longer
has is how a replica started after an etcd restore learns of it (restore_rule.py). An
epoch is only a number a client sends; signed by the replicas, it becomes evidence a
client cannot make up. The key lives in etcd (one per cluster, created once), so a
restored etcd keeps the key its sidecars' proofs were made with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

PROOF_BYTES = 16
KEY_BYTES = 32


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def prove(key: bytes, group: str, era: int, revision: int) -> bytes:
    """The proof pushed with a decision; empty while the replica has no key."""
    if not key:
        return b""
    msg = f"{group}\0{era}\0{revision}".encode()
    return hmac.new(key, msg, hashlib.sha256).digest()[:PROOF_BYTES]


def verify(key: bytes, group: str, era: int, revision: int, proof: bytes) -> bool:
    if not key or len(proof) != PROOF_BYTES:
        return False
    return hmac.compare_digest(prove(key, group, era, revision), proof)


def to_replace(
    key: bytes, held: Mapping[str, tuple[tuple[int, int], bytes]], current: Mapping[str, tuple[int, int]]
) -> list[str]:
    """Groups whose held epoch is ahead of the cluster's decision and was never signed.

    A sidecar applies only decisions newer than what it holds, so such an epoch (a state
    file edited or corrupted) would make it ignore every decision of the group for ever.
    One a replica did sign is left alone: it is evidence of an etcd restore. Nothing is
    judged without a key (a cluster that has not written one yet signs nothing).
    """
    if not key:
        return []
    out = []
    for group, (epoch, proof) in sorted(held.items()):
        now = current.get(group)
        if now is not None and epoch > now and not verify(key, group, epoch[0], epoch[1], proof):
            out.append(group)
    return out
