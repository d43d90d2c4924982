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
