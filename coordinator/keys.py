"""The etcd key layout under the configurable prefix (docs/etcd-keys.md)."""

from __future__ import annotations

from dataclasses import dataclass

from failover.model.spec import Epoch


@dataclass(frozen=True)
class Keys:
    prefix: str = "/failover/v1/"

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"prefix {self.prefix!r} must start and end with '/'")

    @property
    def era(self) -> str:
        return self.prefix + "era"

    @property
    def proof_key(self) -> str:
        """The key replicas sign pushed epochs with (coordinator/core/epoch_proof.py)."""
        return self.prefix + "epoch-proof-key"

    @property
    def leader(self) -> str:
        return self.prefix + "election/leader"

    @property
    def candidates(self) -> str:
        return self.prefix + "election/candidates/"

    def candidate(self, replica_id: str) -> str:
        return self.candidates + replica_id

    @property
    def groups(self) -> str:
        return self.prefix + "groups/"

    @property
    def controls(self) -> str:
        return self.prefix + "controls/"

    @property
    def routes(self) -> str:
        return self.prefix + "routes/"

    @property
    def members(self) -> str:
        return self.prefix + "members/"

    def group(self, name: str) -> str:
        return self.groups + name

    def control(self, name: str) -> str:
        return self.controls + name

    def route(self, name: str) -> str:
        return self.routes + name

    def history_prefix(self, name: str) -> str:
        return f"{self.prefix}history/{name}/"

    def history(self, name: str, prev: Epoch) -> str:
        """Sorts in commit order without knowing the new revision: keyed by the previous epoch."""
        return f"{self.history_prefix(name)}{prev.era:010d}-{prev.revision:020d}"

    def member(self, replica_id: str) -> str:
        return self.members + replica_id

    def tail(self, key: str, section: str) -> str | None:
        """The name after ``prefix + section``, or None when key is not in that section."""
        head = self.prefix + section
        if key.startswith(head):
            rest = key[len(head) :]
            return rest if rest and "/" not in rest else None
        return None
