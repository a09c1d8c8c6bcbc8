from __future__ import annotations

from qflow.graph.explain import explain

BASE = {
    "kind": "step", "step": "flow:Fit", "scheme": 1, "python": "cpython-3.11", "version": None,
    "code": {"flow:Fit": "a1", "flow:scale_factor": "b1", "lib:numpy": "2.0"},
    "settings": {"alpha": 1.0, "epochs": 10},
    "inputs": {"train": {"@": "k-split", "i": 0}, "seed": {"=": "d1"}},
    "factories": [None],
}


def variant(**changes):
    return {**BASE, **changes}


def test_never_computed():
    assert explain(None, BASE, {}) == ["never computed"]


def test_identical_components_give_no_reason():
    assert explain(BASE, dict(BASE), {}) == []


def test_code_of_a_helper_changed():
    current = variant(code={**BASE["code"], "flow:scale_factor": "b2"})
    assert explain(BASE, current, {}) == ["code of `scale_factor` changed"]


def test_new_and_dropped_helpers_and_library_upgrade():
    code = {"flow:Fit": "a1", "flow:other": "c1", "lib:numpy": "2.1"}
    reasons = explain(BASE, variant(code=code), {})
    assert reasons == ["code now uses `other`", "code no longer uses `scale_factor`",
                       "library numpy 2.0 → 2.1"]


def test_setting_changed():
    current = variant(settings={"alpha": 0.5, "epochs": 10})
    assert explain(BASE, current, {}) == ["setting `alpha` 1.0 → 0.5"]


def test_upstream_changed_names_the_step():
    current = variant(inputs={**BASE["inputs"], "train": {"@": "k-split-2", "i": 0}})
    assert explain(BASE, current, {"k-split-2": "Split"}) == ["upstream `Split` changed"]


def test_plain_input_changed():
    current = variant(inputs={**BASE["inputs"], "seed": {"=": "d2"}})
    assert explain(BASE, current, {}) == ["input `seed` changed"]


def test_version_salt_changed():
    assert explain(BASE, variant(version="2"), {}) == ["version changed"]


def test_an_upstream_step_feeding_two_arguments_is_named_once():
    inputs = {"train": {"@": "k-split", "i": 0}, "test": {"@": "k-split", "i": 1}}
    current = variant(inputs={"train": {"@": "k-split-2", "i": 0}, "test": {"@": "k-split-2", "i": 1}})
    assert explain(variant(inputs=inputs), current, {"k-split-2": "Split"}) == \
        ["upstream `Split` changed"]
