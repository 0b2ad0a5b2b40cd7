"""The public API is documented in numpydoc form, and the examples in its docstrings run."""

import doctest
import inspect

import pytest

import simattr_fast as sa
from simattr_fast.datasets import open_dataset
from simattr_fast.debugging import find_duplicates, label_error_scores
from simattr_fast.embed import embed
from simattr_fast.evaluation import evaluate
from simattr_fast.report import render_report
from simattr_fast.simclr import train_ssl

PUBLIC = [
    sa.topk,
    sa.esvm_topk,
    sa.cuda_available,
    sa.Attributor,
    sa.Attribution,
    open_dataset,
    render_report,
    label_error_scores,
]
DOCUMENTED = [*PUBLIC, sa.Attributor.fit, sa.Attributor.attribute, embed, train_ssl, evaluate, find_duplicates]


@pytest.mark.parametrize("obj", DOCUMENTED, ids=lambda o: o.__qualname__)
def test_numpydoc_sections(obj):
    doc = inspect.getdoc(obj) or ""
    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if params:
        assert "Parameters\n----------" in doc, f"{obj.__qualname__}: no Parameters section"
        for p in params:
            assert p in doc, f"{obj.__qualname__}: parameter {p!r} undocumented"
    if not inspect.isclass(obj):
        assert "Returns\n-------" in doc, f"{obj.__qualname__}: no Returns section"


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda o: o.__qualname__)
def test_docstring_examples_run(obj):
    assert "Examples\n--------" in (inspect.getdoc(obj) or ""), f"{obj.__qualname__}: no Examples section"
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(obj, obj.__qualname__, globs={})
    assert tests and any(t.examples for t in tests)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{obj.__qualname__}: {runner.failures} failing example(s)"


def test_arguments_after_k_are_keyword_only():
    for fn in (sa.topk, sa.esvm_topk):
        params = list(inspect.signature(fn).parameters.values())
        after_k = params[[p.name for p in params].index("k") + 1 :]
        assert after_k and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in after_k), fn.__name__
