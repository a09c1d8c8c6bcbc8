from __future__ import annotations

from pathlib import Path
from typing import Any, Generator

import pytest

import qflow
from qflow import providers
from qflow.dsl.decorators import Provider
from qflow.dsl.proxy import Proxy
from qflow.errors import GraphBuildError
from qflow.graph.build import build

CALLS: list[str] = []


@qflow.step
class Split:
    frac: float = 0.5

    def apply(self, data: list) -> tuple[list, list]:
        CALLS.append("Split")
        n = int(len(data) * self.frac)
        return data[:n], data[n:]


@qflow.step
class Total:
    def apply(self, values: list) -> int:
        CALLS.append("Total")
        return sum(values)


@qflow.step
class Fit:
    alpha: float = 1.0

    def apply(self, train: list) -> Generator[qflow.RuntimeInfo, None, float]:
        yield qflow.Metric(name="loss", value=0.1)
        return self.alpha * sum(train)


@qflow.workflow
class Pipeline:
    alpha: float = 1.0

    def run(self, data: list = [1, 2, 3, 4]) -> Generator[qflow.RuntimeInfo, None, Any]:
        train, test = Split().apply(data)
        offset = Total().apply([10, 20])  # no proxy: runs now, as plain Python
        model = yield from qflow.label_info(Fit(alpha=self.alpha), train_loss="loss").apply(train)
        return model, Total().apply(test), offset


def test_build_records_nodes_in_order_and_runs_nothing_with_proxies():
    CALLS.clear()
    graph = build(Pipeline(alpha=2))
    assert list(graph.nodes) == ["data", "Split", "Fit", "Total"]
    assert CALLS == ["Total"]  # only the eager call ran
    split = graph.nodes["Split"]
    assert split.outputs == [list, list] and split.upstream == ["data"]
    fit = graph.nodes["Fit"]
    assert fit.generator and fit.labels == {"train_loss": "loss"} and fit.obj.alpha == 2
    assert fit.inputs["train"].node == "Split" and fit.inputs["train"].index == 0
    assert graph.nodes["Total"].inputs["values"].index == 1
    model, total, offset = graph.result
    assert isinstance(model, Proxy) and model.node == "Fit" and offset == 30
    assert graph.nodes["data"].kind == "input" and graph.nodes["data"].obj == [1, 2, 3, 4]
    assert fit.location.startswith("test_build.py:")


def test_repeated_steps_get_unique_ids_and_nested_proxies_count():
    @qflow.workflow
    class Twice:
        def run(self, a: list = [1], b: list = [2]) -> int:
            return Total().apply([Total().apply(a), Total().apply(b)])

    graph = build(Twice())
    assert list(graph.nodes) == ["a", "b", "Total", "Total_2", "Total_3"]
    assert graph.nodes["Total_3"].upstream == ["Total", "Total_2"]


def test_providers_become_provider_nodes_and_inputs_can_be_overridden():
    @qflow.workflow
    class Load:
        def run(self, table: Any = providers.factory_load(Path("resources/table"))) -> int:
            return Total().apply(table)

    graph = build(Load())
    node = graph.nodes["table"]
    assert node.kind == "provider" and isinstance(node.obj, Provider)
    graph = build(Load(), inputs={"table": [5, 6]})
    assert graph.nodes["table"].kind == "input"
    with pytest.raises(GraphBuildError, match="no input named nope"):
        build(Load(), inputs={"nope": 1})


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("if total > 3:\n            pass", "compares (>)"),
        ("if total:\n            pass", "tests the truth value"),
        ("len(total)", "takes the length"),
        ("total + 1", "applies operator add"),
        ("total.real", "reads attribute 'real'"),
        ("f'{total}'", "formats"),
        ("total[0]", "indexes into"),
        ("a, b = total", "iterates over"),
        ("~total", "applies operator invert to"),
        ("round(total)", "applies operator round to"),
        ("2 % total", "applies operator rmod to"),
        ("total ** 2", "applies operator pow to"),
    ],
)
def test_using_a_proxy_value_is_a_clear_error_with_file_and_line(body: str, what: str, tmp_path: Path):
    source = f'''
import qflow
from tests.unit.graph.test_build import Total

@qflow.workflow
class Bad:
    def run(self, data: list = [1]) -> int:
        total = Total().apply(data)
        {body}
        return total
'''
    path = tmp_path / "bad_workflow.py"
    path.write_text(source)
    namespace: dict[str, Any] = {"__name__": "bad_workflow"}
    exec(compile(source, str(path), "exec"), namespace)
    with pytest.raises(GraphBuildError) as err:
        build(namespace["Bad"]())
    message = str(err.value)
    assert "bad_workflow.py:9" in message and what in message
    assert "Hint:" in message


def test_run_without_inputs_is_refused():
    @qflow.workflow
    class Empty:
        def run(self) -> int:
            return 1

    with pytest.raises(GraphBuildError, match="has no input"):
        build(Empty())


def test_input_without_value_is_refused():
    @qflow.workflow
    class NoDefault:
        def run(self, data: list) -> int:
            return Total().apply(data)

    with pytest.raises(GraphBuildError, match="Input 'data'.*has no value"):
        build(NoDefault())


def test_generator_step_without_yield_from_is_explained():
    @qflow.workflow
    class Forgot:
        def run(self, data: list = [1]) -> int:
            model = Fit().apply(data)
            return Total().apply(model)

    with pytest.raises(GraphBuildError, match="yield from"):
        build(Forgot())


def test_bad_call_arguments_name_the_step():
    @qflow.workflow
    class Wrong:
        def run(self, data: list = [1]) -> int:
            return Total().apply(data, 2, 3)

    with pytest.raises(GraphBuildError, match=r"Total.apply\(\)"):
        build(Wrong())


def test_annotations_under_type_checking_still_give_tuple_outputs(tmp_path: Path):
    source = '''
from __future__ import annotations
from typing import TYPE_CHECKING
import qflow
if TYPE_CHECKING:
    import numpy as np

@qflow.step
class Pair:
    def apply(self, x: list) -> tuple[np.ndarray, np.ndarray]:
        return x, x

@qflow.workflow
class W:
    def run(self, x: list = [1]) -> tuple:
        a, b = Pair().apply(x)
        return a, b
'''
    namespace: dict[str, Any] = {"__name__": "tc_workflow"}
    exec(compile(source, str(tmp_path / "tc.py"), "exec"), namespace)
    graph = build(namespace["W"]())
    assert len(graph.nodes["Pair"].outputs) == 2


def test_graph_to_dict():
    data = build(Pipeline()).to_dict()
    assert data["name"] == "Pipeline"
    assert [n["id"] for n in data["nodes"]] == ["data", "Split", "Fit", "Total"]
    assert data["result"] == ["Fit[0]", "Total[0]"]


def test_named_nodes_replace_class_names_and_keep_labels():
    @qflow.workflow
    class Named:
        def run(self, a: list = [1], b: list = [2]) -> Generator[qflow.RuntimeInfo, None, Any]:
            first = qflow.name(Total(), "first").apply(a)
            second = Total().apply(b)
            fit = qflow.label_info(qflow.name(Fit(), "fit_b"), train_loss="loss")
            model = yield from fit.apply(b)
            return first, second, model

    graph = build(Named())
    assert list(graph.nodes) == ["a", "b", "first", "Total", "fit_b"]
    assert graph.nodes["fit_b"].labels == {"train_loss": "loss"}
    assert [p.node for p in graph.result] == ["first", "Total", "fit_b"]


def test_a_duplicate_node_name_names_both_calls():
    @qflow.workflow
    class Twice:
        def run(self, a: list = [1]) -> int:
            qflow.name(Total(), "total").apply(a)
            return qflow.name(Total(), "total").apply(a)

    with pytest.raises(GraphBuildError) as info:
        build(Twice())
    line = Twice.run.__code__.co_firstlineno
    assert f"test_build.py:{line + 2}: node name 'total' is already used by the step call " \
        f"at test_build.py:{line + 1}" in str(info.value)

    @qflow.workflow
    class Clash:
        def run(self, a: list = [1]) -> int:
            return qflow.name(Total(), "a").apply(a)

    with pytest.raises(GraphBuildError, match="already used by the input `a` of run()"):
        build(Clash())


@pytest.mark.parametrize("bad", ["two words", "1st", "a.b", ""])
def test_an_invalid_node_name_is_refused_where_it_is_given(bad):
    with pytest.raises(GraphBuildError, match=r"test_build.py:\d+: .* is not a node name"):
        qflow.name(Total(), bad)
    with pytest.raises(GraphBuildError, match="takes a step instance"):
        qflow.name(Total, "total")


def test_an_annotation_naming_what_is_not_defined_yet_resolves_once_it_is():
    """Annotations are evaluated once per function, except those that did not resolve (a
    notebook may define the name in a later cell)."""
    from qflow.graph.build import _hints

    namespace: dict[str, Any] = {}
    exec("def run(self, x: 'Later') -> int:\n    return 1", namespace)  # noqa: S102
    assert _hints(namespace["run"])["x"] is not None
    assert _hints(namespace["run"])["return"] is int

    class Later:
        pass

    namespace["Later"] = Later
    assert _hints(namespace["run"])["x"] is Later
    assert _hints(namespace["run"]) is _hints(namespace["run"])  # resolved: remembered
