"""Operator text with terminal control characters is refused, not stored and replayed.

Found from outside: ``failover switch --operator $'q\\x1b]0;PWNED\\x07a' --reason $'\\x1b[31mRED ...'``
was committed, and ``failover history`` and ``status`` then wrote the raw escape sequences
(a window title, colours, an erased line with a fake "switch OK") to every operator's
terminal that read them. Reasons, operator names and endpoints are one line of text.
"""

from __future__ import annotations

import pytest

from coordinator.request_checks import check_set_control, check_switch
from failover.v1 import admin_pb2 as apb


@pytest.mark.parametrize(
    "bad",
    [
        "q\x1b]0;PWNED\x07a",
        "esc \x1b[31mRED\x1b[0m",
        "two\nlines",
        "cr\rover",
        "nul\x00",
        "c1\x9b31m",
        "del\x7f",
    ],
)
@pytest.mark.parametrize("field", ["reason", "operator"])
def test_control_characters_are_refused(field: str, bad: str) -> None:
    req = apb.SwitchRequest(group="g", path="p", reason="r", operator="o")
    setattr(req, field, bad)
    problem = check_switch(req)
    assert problem is not None and problem.startswith(f"{field}:") and "control character" in problem, problem
    ctl = apb.SetControlRequest(
        action=apb.CONTROL_ACTION_DRAIN, group="g", path="p", reason="r", operator="o"
    )
    setattr(ctl, field, bad)
    assert check_set_control(ctl) is not None


def test_ordinary_text_passes() -> None:
    req = apb.SwitchRequest(
        group="g", path="p", reason="primary line flapping: ticket OPS-1 (é, 日本)", operator="alice"
    )
    assert check_switch(req) is None
