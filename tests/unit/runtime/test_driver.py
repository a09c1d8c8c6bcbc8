"""The run driver with the in-process runner: caching, laziness, failures, metrics, records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Generator

import pytest

import qflow
from qflow.errors import StepError
from qflow.trackers.file import FileTracker
from tests.storefiles import overwrite, record

RAN: list[str] = []


@qflow.step
class Source:
    n: int = 3

    def apply(self, seed: int) -> list:
        RAN.append("Source")
        return list(range(seed, seed + self.n))


@qflow.step
class Split:
    def apply(self, values: list) -> tuple[list, list]:
        RAN.append("Split")
        return values[:1], values[1:]


@qflow.step
class Train:
    alpha: float = 1.0

    def apply(self, train: list, test: list) -> Generator[qflow.RuntimeInfo, None, float]:
        RAN.append("Train")
        bar = qflow.ProgressBar(name="epoch", total=2)
        for epoch in range(2):
            yield qflow.Metric(name="loss", value=1.0 / (epoch + 1), step=epoch)
            yield bar.update(1)
        yield qflow.Metric(name="size", value=len(test))
        return self.alpha * sum(train + test)


@qflow.step(cache=False)
class Noise:
    def apply(self, x: float) -> float:
        RAN.append("Noise")
        return x


@qflow.workflow
class Flow:
    alpha: float = 1.0
    n: int = 3

    def run(self, seed: int = 1) -> Generator[qflow.RuntimeInfo, None, float]:
        values = Source(n=self.n).apply(seed)
        train, test = Split().apply(values)
        score = yield from qflow.label_info(Train(alpha=self.alpha), loss="loss").apply(train, test)
        return score


def run(workflow, root: Path, **kwargs):
    RAN.clear()
    return qflow.run(workflow, root=root, console=False, **kwargs)


def test_first_run_computes_second_run_loads_nothing_but_the_result(tmp_path):
    first = run(Flow(), tmp_path)
    assert first.status == "succeeded" and first.result == 6.0
    assert RAN == ["Source", "Split", "Train"]
    assert first.metrics == {"loss": 0.5}
    assert first.nodes["Train"].reasons == ["never computed"]
    second = run(Flow(), tmp_path)
    assert RAN == [] and second.result == 6.0 and second.metrics == {"loss": 0.5}
    assert {n: r.status for n, r in second.nodes.items() if r.kind == "step"} == {
        "Source": "cached", "Split": "cached", "Train": "cached"}


def test_parameter_change_reruns_only_dependent_steps_and_says_why(tmp_path):
    run(Flow(), tmp_path)
    again = run(Flow(alpha=2.0), tmp_path)
    assert RAN == ["Train"] and again.result == 12.0
    assert again.nodes["Train"].reasons == ["setting `alpha` 1.0 → 2.0"]
    more = run(Flow(n=4), tmp_path)
    assert RAN == ["Source", "Split", "Train"]
    assert more.nodes["Split"].reasons == ["upstream `Source` changed"]


def test_a_fully_cached_rerun_reads_and_writes_only_the_small_index(tmp_path, monkeypatch):
    from qflow.store.local import Store

    run(Flow(), tmp_path)
    index = tmp_path / ".qflow/store/index"
    assert sorted(p.name for p in index.iterdir()) == [
        "workflow-Flow.components.json", "workflow-Flow.json"]
    assert "code" in json.loads((index / "workflow-Flow.components.json").read_text())["Train"]
    assert json.loads((index / "workflow-Flow.json").read_text())["Train"]["_key"]
    used = []
    for name in ("read_index", "write_index"):
        real = getattr(Store, name)
        monkeypatch.setattr(Store, name, lambda self, doc, *a, real=real, name=name: used.append(
            (name, doc)) or real(self, doc, *a))
    run(Flow(), tmp_path)
    assert used == [("read_index", "workflow-Flow")]
    run(Flow(alpha=2.0), tmp_path)  # Train's key changed: why, then both documents
    assert used[1:] == [("read_index", "workflow-Flow"), ("read_index", "workflow-Flow.components"),
                        ("write_index", "workflow-Flow.components"),
                        ("write_index", "workflow-Flow")]


def test_an_index_of_the_older_layout_still_says_why(tmp_path):
    run(Flow(), tmp_path)
    index = tmp_path / ".qflow/store/index"
    small = json.loads((index / "workflow-Flow.json").read_text())
    components = json.loads((index / "workflow-Flow.components.json").read_text())
    (index / "workflow-Flow.components.json").unlink()
    (index / "workflow-Flow.json").write_text(json.dumps(  # components inline, as before
        {nid: {**components[nid], **entry} for nid, entry in small.items()}))
    again = run(Flow(alpha=2.0), tmp_path)
    assert again.nodes["Train"].reasons == ["setting `alpha` 1.0 → 2.0"]
    assert "code" not in json.loads((index / "workflow-Flow.json").read_text())["Source"]
    assert (index / "workflow-Flow.components.json").is_file()


def test_a_fully_cached_rerun_writes_its_record_once(tmp_path, monkeypatch):
    import qflow.runtime.record as record

    written = []
    real = record.atomic_write_bytes

    def write(path, data, **kwargs):
        written.append(json.loads(data)["status"])
        real(path, data, **kwargs)

    monkeypatch.setattr(record, "atomic_write_bytes", write)
    run(Flow(), tmp_path)
    assert written == ["running", "succeeded"]  # the first before Source computed
    written.clear()
    again = run(Flow(), tmp_path)
    assert written == ["succeeded"] and RAN == []
    record_file = tmp_path / ".qflow/runs" / again.run_id / "record.json"
    assert json.loads(record_file.read_text())["status"] == "succeeded"
    from qflow.runtime.background import finish

    finish()  # the background thread has nothing left to write over it
    assert written == ["succeeded"]


def test_input_override(tmp_path):
    assert run(Flow(), tmp_path, inputs={"seed": 10}).result == 33.0


def test_run_record_and_file_tracker(tmp_path):
    state = run(Flow(), tmp_path)
    folder = tmp_path / ".qflow/runs" / state.run_id
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "succeeded" and record["result"] == 6.0
    assert record["parameters"] == {"alpha": 1.0, "n": 3}
    assert record["counts"] == {"ran": 3}
    train = record["nodes"]["Train"]
    assert train["status"] == "ran" and train["key"] and train["duration"] >= 0
    assert train["components"]["settings"] == {"alpha": 1.0}
    assert [m["value"] for m in train["metrics"] if m["name"] == "loss"] == [1.0, 0.5]
    assert [n["id"] for n in record["graph"]["nodes"]] == ["seed", "Source", "Split", "Train"]
    assert record["nodes"] == json.loads(json.dumps({n: v.to_dict() for n, v in state.nodes.items()}))
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["node"]["id"] for e in lines if e["event"] == "node_finished"] == [
        "seed", "Source", "Split", "Train"]
    tracked = FileTracker(tmp_path / ".qflow/tracker/file").read_run(state.run_id)
    assert tracked.status == "FINISHED" and tracked.params["alpha"] == "1.0"
    assert tracked.params["Train.alpha"] == "1.0" and tracked.params["Source.n"] == "3"
    assert [(p.step, p.value) for p in tracked.history["loss"]] == [(0, 1.0), (1, 0.5)]
    assert [p.value for p in tracked.history["Train.size"]] == [2.0]  # unlabelled: Step.metric
    assert tracked.tags["qflow.step.Split.status"] == "ran"
    assert tracked.tags["qflow.workflow"] == "Flow" and tracked.tags["qflow.result"] == "6.0"
    assert tracked.record["run_id"] == state.run_id


def test_failing_step_fails_the_run_keeps_finished_steps_and_resumes(tmp_path):
    @qflow.step
    class Boom:
        def apply(self, values: list) -> int:
            RAN.append("Boom")
            raise ValueError("bad values")

    @qflow.workflow
    class Fails:
        def run(self, seed: int = 1) -> int:
            return Boom().apply(Source().apply(seed))

    with pytest.raises(StepError) as err:
        run(Fails(), tmp_path)
    assert err.value.step == "Boom" and "ValueError: bad values" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)
    record = json.loads((tmp_path / ".qflow/runs" / err.value.run_id / "record.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "Boom"
    assert record["nodes"]["Source"]["status"] == "ran"
    assert "bad values" in record["nodes"]["Boom"]["error"]
    with pytest.raises(StepError):
        run(Fails(), tmp_path)
    assert RAN == ["Boom"]  # Source came from the cache


def test_a_finished_run_is_freed_at_once_not_left_to_the_garbage_collector(tmp_path):
    import gc
    import weakref

    gc.disable()  # a collection in between would hide a cycle
    try:
        state = run(Flow(), tmp_path)
        step = weakref.ref(state.graph.nodes["Source"].obj)
        del state
        assert step() is None
    finally:
        gc.enable()


def test_records_and_events_keep_any_text_and_nan_metrics(tmp_path):
    from qflow.runtime.record import list_records, node_entries, read_record

    message = "naïve \u2028 split\nline \u00e9\U0001f600"

    @qflow.step
    class Odd:
        def apply(self, x: int) -> Generator[qflow.RuntimeInfo, None, int]:
            yield qflow.Metric(name="loss", value=float("nan"))
            raise ValueError(message)

    @qflow.workflow
    class W:
        def run(self, x: int = 1) -> int:
            return Odd().apply(x)

    with pytest.raises(StepError) as err:
        run(W(), tmp_path)
    runs = tmp_path / ".qflow/runs"
    record = read_record(runs, err.value.run_id)
    assert message in record["nodes"]["Odd"]["error"] and message in record["error"]
    [listed] = list_records(runs)
    assert listed["run_id"] == err.value.run_id
    entries = node_entries(runs, {"run_id": err.value.run_id})  # the event log's alone
    assert message in entries["Odd"]["error"]
    loss = entries["Odd"]["metrics"][0]["value"]
    assert loss != loss  # NaN, written as the standard library writes it


def test_wrong_number_of_outputs_is_a_step_error(tmp_path):
    @qflow.step
    class Pair:
        def apply(self, x: int) -> tuple[int, int]:
            return x

    @qflow.workflow
    class W:
        def run(self, x: int = 1) -> int:
            a, b = Pair().apply(x)
            return a

    with pytest.raises(StepError, match="tuple of 2 outputs but returned int"):
        run(W(), tmp_path)


def test_unsaveable_output_fails_the_step_with_its_name(tmp_path):
    import threading

    @qflow.step
    class Locky:
        def apply(self, x: int) -> object:
            return threading.Lock()

    @qflow.workflow
    class W:
        def run(self, x: int = 1) -> object:
            return Locky().apply(x)

    with pytest.raises(StepError, match="Step 'Locky'.*cannot be saved.*cannot be pickled"):
        run(W(), tmp_path)


def test_uncached_step_always_runs_and_downstream_sees_its_output(tmp_path):
    @qflow.workflow
    class W:
        def run(self, seed: int = 1) -> float:
            values = Source().apply(seed)
            train, test = Split().apply(values)
            return Noise().apply(train)

    run(W(), tmp_path)
    run(W(), tmp_path)
    assert RAN == ["Noise"]


def test_cache_off_recomputes_everything_and_stores_nothing(tmp_path):
    run(Flow(), tmp_path, cache=False)
    assert RAN == ["Source", "Split", "Train"]
    assert not (tmp_path / ".qflow/store/objects").exists()


def test_corrupted_upstream_is_recomputed_when_needed(tmp_path):
    first = run(Flow(), tmp_path)
    key = first.nodes["Split"].key
    data = next((tmp_path / ".qflow/store/objects" / key[:2] / key).glob("out1/*.json"))
    data.write_text("[999]")  # same file, different bytes: the checksum no longer matches
    second = run(Flow(alpha=3.0), tmp_path)  # Train must run, so Split's outputs are loaded
    assert RAN == ["Split", "Train"] and second.result == 18.0
    assert "corrupt" in second.nodes["Split"].reasons[0]


def test_one_element_tuple_output_is_unpacked(tmp_path):
    @qflow.step
    class Single:
        def apply(self, x: int) -> tuple[int]:
            return (x + 1,)

    @qflow.workflow
    class W:
        def run(self, x: int = 1) -> int:
            (y,) = Single().apply(x)
            return y

    assert run(W(), tmp_path).result == 2


def test_failed_and_skipped_steps_are_reported(tmp_path):
    seen = []

    from qflow.config.paths import Paths
    from qflow.launchers.local import LocalLauncher
    from qflow.runtime.events import Observer

    class Recorder(Observer):
        def node_finished(self, *, node, **_):
            seen.append((node.id, node.status))

    @qflow.step
    class Boom:
        def apply(self, values: list) -> list:
            raise RuntimeError("no")

    @qflow.workflow
    class W:
        def run(self, seed: int = 1) -> int:
            return Split().apply(Boom().apply(Source().apply(seed)))

    with pytest.raises(StepError):
        LocalLauncher(Paths(tmp_path), console=False, observers=[Recorder()]).launch(W())
    assert seen == [("seed", "input"), ("Source", "ran"), ("Boom", "failed"), ("Split", "skipped")]


def test_named_nodes_name_the_records_and_tracked_metrics(tmp_path):
    @qflow.workflow
    class Twice:
        def run(self, seed: int = 1) -> Generator[qflow.RuntimeInfo, None, float]:
            small = qflow.name(Source(n=2), "small").apply(seed)
            large = Source(n=4).apply(seed)
            train, test = Split().apply(large)
            score = yield from qflow.name(Train(), "scorer").apply(small, test)
            return score

    state = run(Twice(), tmp_path)
    assert list(state.nodes) == ["seed", "small", "Source", "Split", "scorer"]
    record = json.loads((tmp_path / ".qflow/runs" / state.run_id / "record.json").read_text())
    assert set(record["nodes"]) == {"seed", "small", "Source", "Split", "scorer"}
    tracked = FileTracker(tmp_path / ".qflow/tracker/file").read_run(state.run_id)
    assert tracked.params["small.n"] == "2" and tracked.params["Source.n"] == "4"
    assert "scorer.size" in tracked.history and tracked.tags["qflow.step.scorer.status"] == "ran"
    again = run(Twice(), tmp_path)
    assert again.nodes["scorer"].status == "cached"


ALIVE: list = []  # weak references to values steps returned


class Box:
    """A value that can be referred to weakly."""

    def __init__(self, n: int) -> None:
        self.n = n


@qflow.step
class MakeBox:
    def apply(self, seed: int) -> Box:
        import weakref

        box = Box(seed)
        ALIVE.append(weakref.ref(box))
        return box


@qflow.step
class Unbox:
    def apply(self, box: Box) -> int:
        return box.n


@qflow.step
class Released:
    def apply(self, n: int) -> list:
        import gc

        gc.collect()
        return [ref() is None for ref in ALIVE]


@pytest.mark.parametrize("cache", [True, False])
def test_a_value_leaves_memory_once_its_last_reader_ran(tmp_path, cache):
    @qflow.workflow
    class W:
        def run(self, seed: int = 1) -> list:
            return Released().apply(Unbox().apply(MakeBox().apply(seed)))

    ALIVE.clear()
    assert run(W(), tmp_path, cache=cache).result == [True]


def test_cache_off_computes_no_keys(tmp_path):
    state = run(Flow(), tmp_path, cache=False)
    assert state.result == 6.0
    assert {n.key for n in state.nodes.values()} == {None}
    assert all(n.components is None for n in state.nodes.values())
    assert state.nodes["Train"].reasons == ["caching is off"]


def test_an_uncached_step_keeps_its_value_for_a_damaged_cached_reader(tmp_path):
    @qflow.step
    class Double:
        factor: int = 2

        def apply(self, values: list) -> list:
            RAN.append("Double")
            return [v * self.factor for v in values]

    @qflow.step
    class Total:
        offset: int = 0

        def apply(self, values: list) -> int:
            RAN.append("Total")
            return sum(values) + self.offset

    @qflow.workflow
    class W:
        offset: int = 0

        def run(self, seed: int = 1) -> int:
            return Total(offset=self.offset).apply(Double().apply(Noise().apply(
                Source().apply(seed))))

    first = run(W(), tmp_path)
    key = first.nodes["Double"].key
    data = record(tmp_path / ".qflow/store", key)
    assert data.endswith(b"6]")
    overwrite(tmp_path / ".qflow/store", key, data[:-2] + b"9]")  # no longer its checksum's
    second = run(W(offset=1), tmp_path)  # Total must run and reads the damaged copy
    assert RAN == ["Noise", "Double", "Total"] and second.result == 13
    assert "corrupt" in second.nodes["Double"].reasons[0]


def test_a_cached_step_keeps_its_metrics_from_the_index_or_else_from_the_store(tmp_path,
                                                                              monkeypatch):
    from qflow.store.local import Store

    run(Flow(), tmp_path)
    read = []
    manifest = Store._manifest  # what manifest() and load() read
    monkeypatch.setattr(Store, "_manifest", lambda self, key: read.append(key) or manifest(self,
                                                                                           key))
    again = run(Flow(), tmp_path)
    key = again.nodes["Train"].key
    assert read == [key] and again.metrics == {"loss": 0.5}  # the result's load only
    assert [m["value"] for m in again.nodes["Train"].metrics if m["name"] == "loss"] == [1.0, 0.5]
    for index in (tmp_path / ".qflow/store/index").iterdir():
        index.unlink()
    third = run(Flow(), tmp_path)
    assert len(read) == 5 and third.metrics == {"loss": 0.5}  # each step's manifest, then the result's
    assert third.nodes["Train"].metrics == again.nodes["Train"].metrics


def test_the_store_lock_is_let_go_only_once_the_record_names_the_keys_found(tmp_path,
                                                                           monkeypatch):
    import contextlib

    from qflow.store.local import Store

    run(Flow(), tmp_path)
    logged_at_unlock: list[str] = []
    real = Store.lock

    @contextlib.contextmanager
    def lock(self, *, shared=False):
        with real(self, shared=shared):
            yield
            newest = sorted((tmp_path / ".qflow/runs").iterdir())[-1] / "events.jsonl"
            logged_at_unlock.append(newest.read_text() if newest.exists() else "")

    monkeypatch.setattr(Store, "lock", lock)
    second = run(Flow(), tmp_path)
    cached = [n.key for n in second.nodes.values() if n.status == "cached"]
    assert len(cached) == 3 and len(logged_at_unlock) == 1  # one hold for three cache hits
    assert all(key in logged_at_unlock[0] for key in cached)
    run(Flow(), tmp_path, cache=False)  # nothing is looked up: the lock is not taken
    assert len(logged_at_unlock) == 1
