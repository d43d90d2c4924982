"""rewound_keys: the evidence that etcd was put back to an older copy though its revision did not go back."""

from __future__ import annotations

from coordinator.store.mirror import rewound_keys
from coordinator.store.types import KV


def kv(key: str, mod: int, create: int = 1) -> KV:
    return KV(key=key, value=b"", create_revision=create, mod_revision=mod, version=1, lease=0)


def test_a_key_older_in_etcd_than_held_is_evidence() -> None:
    held = {"/p/routes/g": kv("/p/routes/g", 30), "/p/groups/g": kv("/p/groups/g", 3)}
    listed = [kv("/p/routes/g", 21), kv("/p/groups/g", 3)]
    detail = rewound_keys(held, listed, "/p/")
    assert "routes/g at mod revision 21 in etcd, 30 held" in detail
    assert "groups/g" not in detail


def test_writes_deletes_and_recreates_since_are_no_evidence() -> None:
    held = {"/p/a": kv("/p/a", 5), "/p/b": kv("/p/b", 6), "/p/c": kv("/p/c", 7)}
    # a unchanged, b rewritten, c deleted, d new, e deleted and re-created (new create revision).
    listed = [kv("/p/a", 5), kv("/p/b", 40), kv("/p/d", 41), kv("/p/e", 42, create=42)]
    assert rewound_keys(held, listed, "/p/") == ""
    assert rewound_keys({}, listed, "/p/") == ""


def test_names_at_most_three_keys() -> None:
    held = {f"/p/k{i}": kv(f"/p/k{i}", 50) for i in range(5)}
    detail = rewound_keys(held, [kv(f"/p/k{i}", 10) for i in range(5)], "/p/")
    assert detail.count("held") == 3 and "(+2 more)" in detail
