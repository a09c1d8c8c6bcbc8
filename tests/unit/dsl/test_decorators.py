from __future__ import annotations

import pickle

import pytest

import qflow
from qflow.dsl.decorators import Provider, StepBase, WorkflowBase, labels_of, name_of
from qflow.errors import GraphBuildError, SettingsError


@qflow.mixin
class Seeded:
    seed: int = 0

    def rng_name(self) -> str:
        return f"rng-{self.seed}"


@qflow.step
class Fit(Seeded):
    alpha: float = 1.0
    max_iter: int = 10

    def apply(self, x: int) -> int:
        return x * 2


@qflow.workflow
class Train:
    alpha: float = 0.5

    def run(self, x: int = 1) -> int:
        return Fit(alpha=self.alpha).apply(x)


def test_step_is_a_validated_model_keeping_its_methods_and_mixins():
    fit = Fit(alpha="0.25", seed=3)
    assert isinstance(fit, StepBase) and isinstance(fit, Seeded)
    assert fit.alpha == 0.25 and fit.seed == 3 and fit.max_iter == 10
    assert fit.rng_name() == "rng-3"
    assert Fit.__name__ == "Fit" and Fit.__qualname__ == "Fit"
    assert fit.apply(4) == 8  # called with no proxy: plain Python


def test_wrong_type_names_class_and_field():
    with pytest.raises(SettingsError) as err:
        Fit(alpha="a lot")
    assert "Fit" in str(err.value) and "'alpha'" in str(err.value)
    assert "a lot" in str(err.value)


def test_unknown_field_lists_the_fields():
    with pytest.raises(SettingsError) as err:
        Train(alpah=0.1)
    assert "unknown field 'alpah'" in str(err.value) and "alpha" in str(err.value)


def test_steps_are_immutable():
    with pytest.raises(Exception):
        Fit().alpha = 2.0  # type: ignore[misc]


def test_workflow_needs_run_and_step_needs_apply():
    with pytest.raises(GraphBuildError, match="no run"):
        @qflow.workflow
        class NoRun:
            pass

    with pytest.raises(GraphBuildError, match="no apply"):
        @qflow.step
        class NoApply:
            pass


def test_workflow_is_a_model():
    assert isinstance(Train(), WorkflowBase) and Train(alpha=2).alpha == 2.0


def test_step_options():
    @qflow.step(cache=False, version="2")
    class Noisy:
        def apply(self, x: int) -> int:
            return x

    assert Noisy.__qflow_cache__ is False and Noisy.__qflow_version__ == "2"
    assert Fit.__qflow_cache__ is True


def test_label_info_copies_the_step_with_labels():
    fit = Fit()
    labelled = qflow.label_info(fit, train_loss="loss")
    assert labels_of(labelled) == {"train_loss": "loss"} and labels_of(fit) == {}
    assert labelled.alpha == fit.alpha
    named = qflow.name(labelled, "fit")
    assert name_of(named) == "fit" and labels_of(named) == {"train_loss": "loss"}
    assert name_of(labelled) is None and name_of(pickle.loads(pickle.dumps(named))) == "fit"
    with pytest.raises(GraphBuildError, match="step instance"):
        qflow.label_info(object(), x="y")


def test_provider_call_is_deferred():
    calls = []

    @qflow.provider
    def numbers(n: int) -> list:
        calls.append(n)
        return list(range(n))

    p = numbers(3)
    assert isinstance(p, Provider) and calls == [] and repr(p) == "numbers(3)"
    assert p.fn(*p.args) == [0, 1, 2] and p.cache is True


def test_progress_bar_and_metric():
    bar = qflow.ProgressBar(name="epoch", total=4)
    bar.update(1)
    event = bar.update(2, message="loss=0.1")
    assert (event.done, event.total, event.message) == (3, 4, "loss=0.1")
    assert isinstance(event, qflow.RuntimeInfo)
    assert qflow.Metric(name="loss", value=0.5, step=2).step == 2


def _plain(self, a, b=2, *, c=3): ...
def _required_keyword(self, a, *, c): ...
def _positional_only(self, a, /, b=2): ...
def _variadic(self, *values, **options): ...


@pytest.mark.parametrize("fn", [_plain, _required_keyword, _positional_only, _variadic])
@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}), ((1, 5), {}), ((1,), {"b": 5}), ((1,), {"c": 4, "b": 5}), ((), {"a": 1}),
    ((1, 5, 6), {}), ((1,), {"a": 1}), ((1,), {"d": 1}), ((), {}), ((1,), {"c": 4}),
])
def test_bind_gives_what_inspect_gives(fn, args, kwargs):
    import inspect

    from qflow.dsl.decorators import bind

    try:
        expected = dict(inspect.signature(fn).bind("step", *args, **kwargs).arguments)
    except TypeError as exc:
        with pytest.raises(TypeError, match=str(exc)):
            bind(fn, ("step", *args), kwargs)
        return
    bound = bind(fn, ("step", *args), kwargs)
    assert bound == expected and list(bound) == list(expected)
