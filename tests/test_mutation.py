"""The mutation driver (jointwsss bench mutation): which mutants it makes, and a tiny run (CI's whole budget)."""

from __future__ import annotations

import shutil
import sys

import pytest
from conftest import REPO

from jointwsss.bench.mutation import (
    EQUIVALENT,
    TARGETS,
    MutationTarget,
    function_lines,
    message_lines,
    module_mutants,
    run_mutation,
    table_lines,
)

SOURCE = '''\
import logging
log = logging.getLogger("x")


def kept(a, b):
    if a < b:
        raise ValueError(f"a {a} must not be below b {b}")
    return a + b


def other(a):
    log.info("a is %d", a + 1)
    return a * 2
'''


def test_only_the_named_functions_are_mutated_and_messages_are_not():
    assert function_lines(SOURCE, ("kept",)) == {4, 5, 6, 7}        # 0-based: def .. return
    assert message_lines(SOURCE) == {6, 11}                         # the raise and the log call
    mutants = module_mutants("x", SOURCE, MutationTarget("x.py", ("kept",), ()))
    assert {m.line_number for m in mutants} == {6, 8}               # 1-based: the comparison and the sum
    assert {m.mutated.strip() for m in mutants} >= {"if a <= b:", "return a - b"}
    assert all(m.function == "kept" for m in mutants)
    with pytest.raises(ValueError, match="functions not found"):
        function_lines(SOURCE, ("missing",))


def test_without_mutmut_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mutmut", None)     # as if the test extra were not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e '\.\[test\]'"):
        module_mutants("x", SOURCE, MutationTarget("x.py", ("kept",), ()))


def test_every_target_names_existing_functions_and_tests():
    for module, target in TARGETS.items():
        source = (REPO / target.path).read_text()
        assert module_mutants(module, source, target), module
        for test in target.tests:
            assert (REPO / test.split("::")[0]).is_file(), test
    assert set(EQUIVALENT) <= set(TARGETS)
    # every mutant called equivalent is one the generator still makes (an edited line leaves no stale entry behind)
    for module, equivalent in EQUIVALENT.items():
        target = TARGETS[module]
        made = {mutant.key for mutant in module_mutants(module, (REPO / target.path).read_text(), target)}
        assert set(equivalent) <= made, sorted(set(equivalent) - made)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs the git checkout")
def test_a_tiny_run_kills_the_first_mutants_of_the_metrics():
    result = run_mutation(REPO, "HEAD", ["metrics"], limit=3)
    metrics = result["modules"]["metrics"]
    assert metrics["mutants"] == 3 and metrics["killed"] == 3 and metrics["survived"] == 0
    assert all(r["killed_by"].startswith("tests/test_metrics.py::") for r in metrics["results"])
    assert "| metrics | 3 | 0 | 3 / 3 | 100.0 % | 0 |" in "\n".join(table_lines(result))
