"""``segnet-ros benchmark`` on a tiny model: every backend x precision is a row, timed or with the reason
it cannot run; ``--json`` rows carry the fields; auto's row is marked; errors are one line."""

from __future__ import annotations

import importlib.util
import json

import pytest

from segnet_ros.backends.cpu import cpu_info

from conftest import run_cli

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
FIELDS = {"kind", "backend", "device", "precision", "available", "reason", "native", "median_ms", "p95_ms"}
FAST = ("--runs", "3", "--warmup", "1", "--input-size", "160x120", "--threads", "1", "--frame-sizes", "160x120,96x64",
        "--frame-runs", "2")


def benchmark_json(*args: str) -> list[dict]:
    result = run_cli("benchmark", *FAST, "--json", *args, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def inference(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["backend"], r["device"], r["precision"]): r for r in rows if r["kind"] == "inference"}


def test_json_rows_have_the_fields_and_unavailable_rows_say_why(oracle_dir):
    rows = benchmark_json("--model", str(oracle_dir / "fcn_resnet18.onnx"))
    assert rows and all(row.keys() >= FIELDS for row in rows)
    table = inference(rows)
    assert set(table) == {("tensorrt", "cuda", "fp16"), ("tensorrt", "cuda", "int8"), ("tensorrt", "cuda", "fp32"),
                          ("onnxruntime", "cuda", "fp32"), ("onnxruntime", "cpu", "fp32"),
                          ("onnxruntime", "cpu", "int8"), ("openvino", "cpu", "fp32"), ("openvino", "cpu", "bf16"),
                          ("openvino", "cpu", "int8")}
    for row in table.values():
        if row["available"]:
            assert row["reason"] == "" and 0 < row["median_ms"] <= row["p95_ms"] and row["runs"] == 3
        else:
            assert row["reason"] and row["median_ms"] is None and row["p95_ms"] is None
    assert table["onnxruntime", "cpu", "fp32"]["available"] and table["onnxruntime", "cpu", "fp32"]["speedup"] == 1.0
    for precision in ("fp16", "int8", "fp32"):
        assert table["tensorrt", "cuda", precision]["reason"].startswith("TensorRT cannot run here: ")
    for backend in ("onnxruntime", "openvino"):  # nothing quantised in this test's cache
        assert table[backend, "cpu", "int8"]["reason"].startswith(
            "int8: no INT8 model of this ONNX file installed; make one with: segnet-ros quantize --model ") \
            or not HAS_OPENVINO and backend == "openvino"
    bf16 = table["openvino", "cpu", "bf16"]
    assert bf16["native"] is cpu_info().has_native_bf16  # never claims native where the CPU lacks it
    if HAS_OPENVINO:
        assert table["openvino", "cpu", "fp32"]["available"]
        assert bf16["available"] == cpu_info().has_native_bf16
        if not bf16["available"]:
            assert bf16["reason"].startswith("bf16: not native on this CPU")
    else:
        assert table["openvino", "cpu", "fp32"]["reason"].startswith("OpenVINO is not installed")
    assert sum(row["auto"] for row in table.values()) == 1
    (auto,) = [row for row in table.values() if row["auto"]]
    assert auto["available"]
    assert auto["precision"] == ("bf16" if HAS_OPENVINO and cpu_info().has_native_bf16 else "fp32")
    stages = {row["stage"]: row for row in rows if row["kind"] == "stage"}
    assert set(stages) == {"preprocess", "class mask", "colour mask", "overlay", "histogram", "render (all four)"}
    assert all(row["median_ms"] > 0 and row["note"] == "160x120 bgr8" for row in stages.values())
    assert all(row["cpu"] == cpu_info().describe() for row in rows)


def test_the_table_names_the_cpu_auto_and_the_stages():
    result = run_cli("benchmark", *FAST, "--network", "reference-64x32", "--backends", "onnxruntime,openvino",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"CPU: {cpu_info().describe()} (native BF16: ")
    assert "tensorrt" not in out  # --backends left it out
    assert "onnxruntime  cpu    fp32      yes" in out and "<- auto" in out
    assert "auto picks " in out
    assert "pre-processing and rendering of a 160x120 bgr8 frame (network input 64x32):" in out
    for stage in ("preprocess", "class mask", "colour mask", "overlay", "histogram"):
        assert f"  {stage} " in out


def test_an_installed_int8_model_gets_timed_and_chosen(oracle_dir, rng, private_cache):
    pytest.importorskip("sympy")  # quantisation's pre-processing needs it (FLOOR_SKIP)
    from segnet_ros.core.model import ModelFiles, load_model
    from segnet_ros.quantize import QuantizeSettings, prepare_frames, quantize_model

    from oracle import block_image

    model = load_model(ModelFiles.in_folder(oracle_dir))
    frames = [block_image(rng.integers(0, 8, (4, 8)), 256, 128).astype("uint8") for _ in range(8)]
    assert quantize_model(model, prepare_frames([(f, "rgb8") for f in frames], 256, 128),
                          QuantizeSettings(force=True)).installed
    table = inference(benchmark_json("--model", str(oracle_dir / "fcn_resnet18.onnx"), "--backends",
                                     "onnxruntime,openvino"))
    assert table["onnxruntime", "cpu", "int8"]["available"] and table["onnxruntime", "cpu", "int8"]["native"]
    (auto,) = [row for row in table.values() if row["auto"]]
    assert (auto["backend"], auto["precision"]) == ("openvino" if HAS_OPENVINO else "onnxruntime", "int8")


@pytest.mark.parametrize("args, words", [
    (("--backends", "tflite"), "--backends: unknown tflite; choose from onnxruntime, openvino, tensorrt"),
    (("--runs", "0"), "argument --runs: expected a number of timed runs 1..10000, got '0'"),
    (("--input-size", "big"), "argument --input-size/--input_size: expected WIDTHxHEIGHT, each 16..8192, got 'big'"),
])
def test_bad_arguments_are_one_line(args, words):
    result = run_cli("benchmark", "--network", "reference-64x32", *args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"segnet-ros: error: {words}")


def test_tensorrt_rows_run_where_tensorrt_does_and_auto_marks_them(fake_trt, oracle_dir):
    """The contract-enforcing fake stands in for TensorRT and a GPU (it computes in numpy, so it is slow:
    that auto's pick is then not the fastest row is said, as a warning, not hidden)."""
    result = run_cli("benchmark", *FAST, "--frame-sizes", "none", "--json", "--model",
                     str(oracle_dir / "fcn_resnet18.onnx"), "--backends", "tensorrt,onnxruntime",
                     env=fake_trt.child_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    table = inference(json.loads(result.stdout))
    assert table["tensorrt", "cuda", "fp16"]["available"] and table["tensorrt", "cuda", "fp16"]["auto"]
    assert table["tensorrt", "cuda", "fp32"]["available"] and table["tensorrt", "cuda", "fp32"]["native"] is True
    assert "int8" in table["tensorrt", "cuda", "int8"]["reason"]
    assert fake_trt.builds() == 2  # fp16 and fp32 engines; int8 refused before any build
    # the fake is usually, not always, slower than ONNX Runtime on this tiny model: the warning follows the medians
    from segnet_ros.cli.benchmark import AUTO_TOLERANCE

    fastest = min(row["median_ms"] for row in table.values() if row["median_ms"] is not None)
    slow = table["tensorrt", "cuda", "fp16"]["median_ms"] > AUTO_TOLERANCE * fastest
    assert ("segnet-ros: warning: auto picks tensorrt fp16 (cuda)" in result.stderr) == slow, result.stderr


def test_auto_verdict_compares_with_the_fastest_row():
    from segnet_ros.cli.benchmark import Row, auto_verdict

    def row(backend, precision, ms, auto=False):
        return Row(backend, "cpu", precision, times_ms=[ms] * 3, auto=auto)

    picked, fastest, verdict = auto_verdict([row("onnxruntime", "fp32", 66.0), row("openvino", "int8", 34.0, True),
                                             row("openvino", "fp32", 33.0)])
    assert (picked.precision, fastest.precision) == ("int8", "fp32")
    assert verdict == "auto picks openvino int8 (34.0 ms): within 5% of the fastest row, openvino fp32 (33.0 ms)"
    _, _, verdict = auto_verdict([row("onnxruntime", "fp32", 66.0, True), row("openvino", "int8", 34.0)])
    assert verdict.startswith("auto picks onnxruntime fp32 (66.0 ms), 94% slower than openvino int8 (34.0 ms)")
    assert "pass --backend openvino --precision int8" in verdict
    unavailable = Row("openvino", "cpu", "bf16", reason="bf16: not native on this CPU", auto=True)
    _, _, verdict = auto_verdict([row("onnxruntime", "fp32", 66.0), unavailable])
    assert verdict == ("auto's pick did not run here (bf16: not native on this CPU); the fastest row is "
                       "onnxruntime fp32")


def test_full_frame_rows_time_both_pipelines_and_the_host_cpu_outside_the_engine():
    """Host and graph rows per backend and size; on the graph the host only copies bytes in and out."""
    rows = benchmark_json("--network", "reference-64x32", "--backends", "onnxruntime")
    frames = {(r["backend"], r["precision"], r["pipeline"], r["size"]): r for r in rows if r["kind"] == "frame"}
    assert set(frames) == {("onnxruntime", "fp32", pipeline, size) for pipeline in ("host", "graph")
                           for size in ("160x120", "96x64")}
    assert all(r["available"] and r["runs"] == 2 and r["median_ms"] > 0 for r in frames.values())
    for size in ("160x120", "96x64"):
        host, graph = (frames["onnxruntime", "fp32", pipeline, size] for pipeline in ("host", "graph"))
        assert 0 <= graph["host_cpu_ms"] < host["host_cpu_ms"]


def test_the_tensorrt_graph_row_has_only_copies_on_the_host(fake_trt, oracle_dir):
    """With the fakes standing in for the GPU: the graph row of TensorRT runs, and the host's CPU per frame
    outside the engine call is its copies alone, below the host pipeline's pre-processing and rendering."""
    result = run_cli("benchmark", *FAST, "--json", "--model", str(oracle_dir / "fcn_resnet18.onnx"),
                     "--backends", "tensorrt", "--frame-sizes", "160x120", env=fake_trt.child_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    frames = {(r["precision"], r["pipeline"]): r for r in json.loads(result.stdout)
              if r["kind"] == "frame" and r["backend"] == "tensorrt"}
    for precision in ("fp16", "fp32"):
        host, graph = frames[precision, "host"], frames[precision, "graph"]
        assert host["available"] and graph["available"], graph["reason"]
        assert graph["host_cpu_ms"] < host["host_cpu_ms"]
