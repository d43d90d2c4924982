from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from failover.venue.config import VenueConfig, describe_validation_error
from failover.wire.address import parse_host_port


def test_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "venue.yaml"
    path.write_text(
        "name: cme\n"
        "gateways:\n"
        "  - {name: primary, listen: '127.0.0.1:9001'}\n"
        "  - {name: backup, listen: '[::1]:9002'}\n"
        "control_listen: 0.0.0.0:9100\n"
        "cancel_on_disconnect: true\n"
    )
    cfg = VenueConfig.from_yaml(path)
    assert cfg.name == "cme" and cfg.cancel_on_disconnect and not cfg.single_session
    assert [(g.name, g.host, g.port) for g in cfg.gateways] == [
        ("primary", "127.0.0.1", 9001),
        ("backup", "::1", 9002),
    ]


@pytest.mark.parametrize(
    ("data", "loc", "words"),
    [
        ({"gateways": []}, "gateways", "at least 1"),
        (
            {"gateways": [{"name": "p", "listen": "127.0.0.1:1"}, {"name": "p", "listen": "127.0.0.1:2"}]},
            "gateways",
            "duplicate gateway name 'p'",
        ),
        (
            {"gateways": [{"name": "a", "listen": "127.0.0.1:7"}, {"name": "b", "listen": "127.0.0.1:7"}]},
            "gateways",
            "both listen",
        ),
        ({"gateways": [{"name": "p", "listen": "127.0.0.1"}]}, "gateways.0.listen", "host:port"),
        ({"gateways": [{"name": "p", "listen": "127.0.0.1:70000"}]}, "gateways.0.listen", "65535"),
        ({"gateways": [{"name": "p", "listen": "bad host:1"}]}, "gateways.0.listen", "host name"),
        ({"gateways": [{"name": "p", "listen": ":1"}], "control_listen": "x"}, "gateways.0.listen", ""),
        (
            {"gateways": [{"name": "p", "listen": "h:1"}], "control_listen": "x"},
            "control_listen",
            "host:port",
        ),
        ({"gateways": [{"name": "p", "listen": "h:1"}], "colour": "red"}, "colour", "Extra"),
    ],
)
def test_validation_errors_name_the_field(data: dict[str, object], loc: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        VenueConfig.model_validate(data)
    text = describe_validation_error(info.value)
    assert f"{loc}: " in text and words in text


def test_parse_host_port() -> None:
    assert parse_host_port("localhost:0") == ("localhost", 0)
    assert parse_host_port("10.1.2.3:80") == ("10.1.2.3", 80)
    assert parse_host_port("[::]:5") == ("::", 5)
    for bad in ("::1:5", "[zz]:1", "999.1.1.1:5", "h:-1", "h:"):
        with pytest.raises(ValueError):
            parse_host_port(bad)
