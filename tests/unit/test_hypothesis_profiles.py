"""Hypothesis runs deterministically in CI and randomized on demand (issue 10, defect 7).

``make test`` (what the README and ``.ci/run`` call) selects the ``ci`` profile:
derandomized, no deadline, the reproduction blob printed on failure. ``make
test-explore`` selects ``explore``: random seeds and more examples, to look for
new counterexamples.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]


def _target(name: str) -> str:
    """The recipe lines of one Makefile target."""
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(name)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, f"no Makefile target {name!r}"
    return m.group(1)


def test_ci_profile_is_deterministic() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.deadline is None
    assert ci.print_blob is True


def test_explore_profile_is_random_and_larger() -> None:
    ci, explore = settings.get_profile("ci"), settings.get_profile("explore")
    assert explore.derandomize is False
    assert explore.deadline is None
    assert explore.max_examples > ci.max_examples


def test_make_test_uses_ci_and_test_explore_uses_explore() -> None:
    assert "--hypothesis-profile=ci" in _target("test")
    assert "--hypothesis-profile=explore" in _target("test-explore")
    assert "make test\n" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's command


def test_readme_documents_both_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test")  # the first two commands
    assert "make test-explore" in readme and "--hypothesis-profile=ci" in readme


def test_this_run_is_derandomized_under_make_test(pytestconfig: object) -> None:
    """Settings built by test modules inherit the selected profile's derandomize."""
    profile = getattr(pytestconfig, "getoption")("hypothesis_profile", None)  # noqa: B009
    if profile == "ci":
        assert settings().derandomize is True
