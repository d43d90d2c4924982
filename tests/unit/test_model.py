import pytest
from pydantic import ValidationError

from coordinator.config import CoordinatorConfig
from coordinator.keys import Keys
from failover.config_source import ConfigError, load
from failover.model.spec import Epoch, GroupSpec, describe_validation_error


def g(**kw):
    base = {
        "name": "cme",
        "paths": [
            {"name": "a", "endpoints": {"default": "127.0.0.1:1"}},
            {"name": "b", "endpoints": {"default": "127.0.0.1:2"}},
        ],
    }
    base.update(kw)
    return base


def test_valid_group_and_site_endpoint() -> None:
    spec = GroupSpec.model_validate(
        g(paths=[{"name": "a", "endpoints": {"ny": "10.0.0.1:5", "default": "h:6"}}])
    )
    assert spec.paths[0].endpoint_for("ny") == "10.0.0.1:5"
    assert spec.paths[0].endpoint_for("ld") == "h:6"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (g(paths=[{"name": "a", "endpoints": {"default": "nope"}}]), "paths.0.endpoints"),
        (g(paths=[{"name": "a", "endpoints": {"default": "h:99999"}}]), "paths.0.endpoints"),
        (g(paths=[]), "paths"),
        (g(name="Bad Name"), "name"),
        (g(policy={"min_dwell_ms": -1}), "policy.min_dwell_ms"),
        (g(policy={"bogus": 1}), "policy.bogus"),
        (
            g(
                paths=[
                    {"name": "a", "endpoints": {"default": "h:1"}},
                    {"name": "a", "endpoints": {"default": "h:2"}},
                ]
            ),
            "duplicate path",
        ),
    ],
)
def test_invalid_group_names_the_field(data, field) -> None:
    with pytest.raises(ValidationError) as exc:
        GroupSpec.model_validate(data)
    assert field in describe_validation_error(exc.value)


def test_epoch_order_is_lexicographic() -> None:
    assert Epoch(1, 5) > Epoch(0, 10_000)
    assert Epoch(0, 6) > Epoch(0, 5)


def test_history_keys_sort_in_commit_order() -> None:
    k = Keys("/p/")
    epochs = [Epoch(0, 0), Epoch(0, 9), Epoch(0, 10), Epoch(0, 123456), Epoch(1, 3)]
    keys = [k.history("g", e) for e in epochs]
    assert keys == sorted(keys)


def test_config_timing_budget_is_checked() -> None:
    with pytest.raises(ConfigError, match="timing budget"):
        load(CoordinatorConfig, None, {"election": {"lease_ttl_s": 1}, "etcd": {"rpc_timeout_ms": 400}})


def test_config_duplicate_group_and_bad_address(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("groups:\n  - " + str(g()).replace("'", '"') + "\n  - " + str(g()).replace("'", '"') + "\n")
    with pytest.raises(ConfigError, match="duplicate group 'cme'"):
        load(CoordinatorConfig, f)
    with pytest.raises(ConfigError, match="listen"):
        load(CoordinatorConfig, None, {"listen": "localhost"})


def test_config_file_errors_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load(CoordinatorConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(CoordinatorConfig, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("replica_idd: x\n")
    with pytest.raises(ConfigError, match="replica_idd"):
        load(CoordinatorConfig, typo)


def test_env_overrides_file_and_flags_override_env(tmp_path, monkeypatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("replica_id: fromfile\netcd:\n  rpc_timeout_ms: 300\n")
    monkeypatch.setenv("FAILOVER_ETCD__RPC_TIMEOUT_MS", "200")
    cfg = load(CoordinatorConfig, f)
    assert cfg.replica_id == "fromfile" and cfg.etcd.rpc_timeout_ms == 200
    monkeypatch.setenv("FAILOVER_REPLICA_ID", "fromenv")
    assert load(CoordinatorConfig, f).replica_id == "fromenv"
    assert load(CoordinatorConfig, f, {"replica_id": "fromflag"}).replica_id == "fromflag"


def test_a_decision_record_from_a_newer_version_is_still_read() -> None:
    """Rolling upgrade: a leader of the next version may add fields to the records it
    writes; replicas of this version keep reading the decision and drop the new field."""
    from failover.model.spec import DecisionRecord

    raw = (
        '{"group": "g", "paths": ["a", "b"], "era": 1, "leader_id": "c1", "reason": "r",'
        ' "trigger": {"kind": "operator", "field_of_tomorrow": 1},'
        ' "stages": [{"stage": "detect", "where": "h1", "duration_us": 5, "unit": "us"}],'
        ' "field_of_tomorrow": {"x": 1}}'
    )
    rec = DecisionRecord.model_validate_json(raw)
    assert rec.paths == ["a", "b"] and rec.trigger.kind == "operator"
    assert "field_of_tomorrow" not in rec.model_dump()


@pytest.mark.parametrize(
    "data",
    [
        g(paths=[{"name": "a", "endpoints": {"default": "127.0.0.1:0"}}]),
        g(paths=[{"name": "a", "endpoints": {"default": "h:1", "ny": "[::1]:0"}}]),
    ],
)
def test_a_path_endpoint_on_port_0_is_refused(data) -> None:
    """Found from outside: a group whose endpoint was port 0 was stored, and every sidecar
    then failed to dial that path for ever instead of the operator hearing it at `group put`."""
    with pytest.raises(ValidationError, match="port 0 cannot be dialled"):
        GroupSpec.model_validate(data)


def test_port_0_is_refused_where_dialled_and_kept_where_listened(tmp_path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text("replica_id: r1\nlisten: 127.0.0.1:0\netcd: {endpoints: ['127.0.0.1:2379']}\n")
    assert load(CoordinatorConfig, ok).listen == "127.0.0.1:0"
    for text in (
        "replica_id: r1\netcd: {endpoints: ['127.0.0.1:0']}\n",
        "replica_id: r1\nadvertise: 127.0.0.1:0\netcd: {endpoints: ['127.0.0.1:2379']}\n",
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match="port 0 cannot be dialled"):
            load(CoordinatorConfig, bad)


@pytest.mark.parametrize("field", ["ca_file", "cert_file", "key_file"])
def test_tls_files_without_a_mode_are_refused_not_run_insecure(tmp_path, field) -> None:
    """Found from outside: `tls: {ca_file, cert_file, key_file}` without `mode` ran
    plaintext (mode's default is insecure) with only a warning line; someone who wrote
    the files meant TLS."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"replica_id: r1\netcd: {{endpoints: ['127.0.0.1:2379']}}\ntls: {{{field}: /x.pem}}\n")
    with pytest.raises(ConfigError, match="tls.mode: required when certificate files are given"):
        load(CoordinatorConfig, cfg)
    cfg.write_text(
        f"replica_id: r1\netcd: {{endpoints: ['127.0.0.1:2379']}}\ntls: {{mode: insecure, {field}: /x.pem}}\n"
    )
    assert not load(CoordinatorConfig, cfg).tls.enabled  # said in so many words: kept


def test_a_sidecar_coordinator_on_port_0_is_refused(tmp_path) -> None:
    from failover_sidecar.config import SidecarConfig

    f = tmp_path / "s.yaml"
    f.write_text(
        f"host_id: h1\ngroups: [g1]\ncoordinators: ['127.0.0.1:0']\nstate_file: {tmp_path / 's.json'}\n"
    )
    with pytest.raises(ConfigError, match="port 0 cannot be dialled"):
        load(SidecarConfig, f, {})
