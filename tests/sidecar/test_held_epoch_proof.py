"""A sidecar keeps the proof its replica pushed with a decision, across restarts, and sends
it back with the epoch in its hello (docs/api.md, "Held epochs and their proofs")."""

from __future__ import annotations

from pathlib import Path

from failover_sidecar.state_file import SavedState, load, save

from failover.v1 import types_pb2 as pb

PROOF = bytes(range(16))


def test_the_proof_survives_the_state_file(tmp_path: Path) -> None:
    d = pb.Decision(group="g1", paths=["primary", "backup"], epoch=pb.Epoch(era=2, revision=41, proof=PROOF))
    gdef = pb.GroupDefinition(name="g1", paths=[pb.Path(name=p) for p in ("primary", "backup")])
    f = tmp_path / "h1.state.json"
    save(f, "h1", SavedState(decisions={"g1": d}, definitions={"g1": gdef}))
    back = load(f).decisions["g1"]
    assert (back.epoch.era, back.epoch.revision, back.epoch.proof) == (2, 41, PROOF)
