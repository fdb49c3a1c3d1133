"""What ``auto`` picks for injected machine facts: CPUs with AVX2 only, AVX-512 VNNI + BF16 and AMX,
with and without an installed INT8 model, OpenVINO, ONNX Runtime's CUDA provider and TensorRT; the CPU
facts read from /proc/cpuinfo texts; and the one log line. No OpenVINO needed: runs on the floor."""

from __future__ import annotations

import dataclasses
import logging

import pytest

import segnet_ros.backends as backends
from segnet_ros.backends import BackendOptions, Choice, Facts, choose, create_backend
from segnet_ros.backends.cpu import CpuInfo, parse_cpuinfo
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model

ZEN3_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni
"""
ZEN4_FLAGS = "avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx512_vbmi2"
SPR_FLAGS = "avx2 fma avx512f avx512bw avx512vl avx512_vnni avx_vnni avx512_bf16 amx_tile amx_bf16 amx_int8"

AVX2 = parse_cpuinfo(ZEN3_CPUINFO, cores=2)
AVX512 = parse_cpuinfo(f"model name : AMD EPYC 9R14\nflags : {ZEN4_FLAGS}\n", cores=2)
AMX = parse_cpuinfo(f"model name : Intel(R) Xeon(R) Platinum 8488C\nflags : {SPR_FLAGS}\n", cores=4)
CPUS = {"avx2": AVX2, "avx512": AVX512, "amx": AMX}
OPENVINO = "OpenVINO 2026.4.1"
NO_TRT = "tensorrt is not importable"


def cpu_only(cpu: CpuInfo, **changes) -> Facts:
    """A machine without a GPU, with both CPU runtimes, no INT8 model (unless changed)."""
    return dataclasses.replace(Facts(cpu=cpu, tensorrt_missing=NO_TRT, openvino=OPENVINO), **changes)


# -- the CPU's facts ---------------------------------------------------------------------------
def test_cpuinfo_texts_give_the_flags_that_matter():
    assert AVX2.model == "AMD EPYC 7B13 64-Core Processor" and AVX2.cores == 2
    assert AVX2.flags == {"avx2", "fma"}  # sse, sha_ni...: not ours to report
    assert not AVX2.has_native_bf16 and not AVX2.has_vnni
    assert AVX512.has_native_bf16 and AVX512.has_vnni
    assert AVX512.relevant_flags == ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
    assert AMX.has_native_bf16 and AMX.has_vnni and {"amx_bf16", "amx_int8", "avx_vnni"} <= AMX.flags
    assert AVX2.describe() == "AMD EPYC 7B13 64-Core Processor, 2 cores: avx2 fma"
    vnni_only = parse_cpuinfo("flags : avx2 fma avx_vnni\n")  # Alder Lake: VNNI without BF16
    assert vnni_only.has_vnni and not vnni_only.has_native_bf16
    arm = parse_cpuinfo("Features : fp asimd evtstrm aes\nCPU part : 0xd0c\n")
    assert arm.flags == frozenset() and not arm.has_native_bf16


def test_this_machines_cpu_is_read_once():
    from segnet_ros.backends import cpu

    first = cpu.cpu_info()
    assert first is cpu.cpu_info() and first.cores >= 1 and first.model


# -- auto on the CPU ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind, int8, expected", [
    ("avx2", False, ("onnxruntime", "fp32")),  # no BF16 hardware: the hint would run FP32; ORT's FP32 is faster
    ("avx2", True, ("openvino", "int8")),  # INT8 pays without VNNI too (34 vs 66 ms measured)
    ("avx512", False, ("openvino", "bf16")),
    ("avx512", True, ("openvino", "int8")),
    ("amx", False, ("openvino", "bf16")),
    ("amx", True, ("openvino", "int8")),
])
def test_auto_on_each_kind_of_cpu(kind, int8, expected):
    choice = choose(cpu_only(CPUS[kind], int8_model=int8))
    assert (choice.backend, choice.precision) == expected
    assert choice.reason.startswith(f"TensorRT cannot run here: {NO_TRT}; ONNX Runtime has no CUDA provider, "
                                    "so it runs on the CPU; ")
    if int8:
        assert "an INT8 model of this ONNX file is installed" in choice.reason
    else:
        assert "no INT8 model of this ONNX file is installed ('segnet-ros quantize' makes one)" in choice.reason
    if expected[1] == "bf16":
        assert "this CPU has native BF16" in choice.reason
    if kind == "avx2" and not int8:
        assert choice.reason.endswith("no native BF16 (AMD EPYC 7B13 64-Core Processor has neither avx512_bf16 "
                                      "nor amx_bf16)")


@pytest.mark.parametrize("kind", CPUS)
def test_without_openvino_everything_runs_on_onnx_runtime(kind):
    facts = cpu_only(CPUS[kind], openvino="", openvino_missing="OpenVINO is not installed")
    fp32 = choose(facts)
    assert (fp32.backend, fp32.precision) == ("onnxruntime", "fp32")
    int8 = choose(dataclasses.replace(facts, int8_model=True))
    assert (int8.backend, int8.precision) == ("onnxruntime", "int8")
    assert "OpenVINO is not installed" in int8.reason
    if CPUS[kind].has_native_bf16:
        assert "native BF16 needs OpenVINO (OpenVINO is not installed)" in fp32.reason
        with pytest.raises(BackendError, match="precision bf16 runs on OpenVINO: OpenVINO is not installed"):
            choose(facts, precision="bf16")


def test_without_onnx_runtime_fp32_runs_on_openvino():
    choice = choose(cpu_only(AVX2, onnxruntime=False))
    assert (choice.backend, choice.precision) == ("openvino", "fp32")
    named = choose(cpu_only(AVX2, onnxruntime=False), precision="fp32")
    assert named.reason.endswith("; ONNX Runtime is not installed")


@pytest.mark.parametrize("precision, kind, expected", [
    ("fp32", "avx512", ("onnxruntime", "fp32")),
    ("fp32", "avx2", ("onnxruntime", "fp32")),
    ("int8", "avx2", ("openvino", "int8")),  # the backend then wants the installed model, or names the command
    ("bf16", "avx512", ("openvino", "bf16")),
    ("bf16", "amx", ("openvino", "bf16")),
    ("fp16", "avx512", ("onnxruntime", "fp16")),  # which refuses it, naming TensorRT
])
def test_a_named_precision_picks_the_fastest_backend_for_it(precision, kind, expected):
    choice = choose(cpu_only(CPUS[kind]), device="cpu", precision=precision)
    assert (choice.backend, choice.precision) == expected
    assert choice.reason.startswith("device 'cpu' was asked for; ")


def test_bf16_on_a_cpu_without_it_is_refused_never_run_slowly():
    with pytest.raises(BackendError, match=r"bf16: not native on this CPU \(AMD EPYC 7B13 64-Core Processor has "
                                           r"neither avx512_bf16 nor amx_bf16\)"):
        choose(cpu_only(AVX2), precision="bf16")


@pytest.mark.parametrize("backend, kind, int8, expected", [
    ("onnxruntime", "avx512", False, "fp32"),  # ONNX Runtime has no BF16 path: fp32
    ("onnxruntime", "avx2", True, "int8"),
    ("openvino", "avx2", False, "fp32"),
    ("openvino", "avx512", False, "bf16"),
    ("openvino", "amx", True, "int8"),
])
def test_precision_auto_for_a_named_cpu_backend(backend, kind, int8, expected):
    choice = choose(cpu_only(CPUS[kind], int8_model=int8), device="cpu", backend=backend)
    assert (choice.backend, choice.precision) == (backend, expected)
    assert choice.log_line(backend, "auto").startswith(f"precision auto chose {expected} on {backend}: ")


# -- GPUs first --------------------------------------------------------------------------------
def test_tensorrt_wins_wherever_it_runs():
    facts = Facts(cpu=AMX, tensorrt="TensorRT 10.3.0 and CUDA device 'Orin' (compute capability 8.7) found",
                  onnxruntime_cuda=True, openvino=OPENVINO, int8_model=True)
    choice = choose(facts)
    assert choice == Choice("tensorrt", "auto", facts.tensorrt)
    assert choice.log_line("auto", "auto") == f"backend auto chose tensorrt: {facts.tensorrt}"
    assert choose(facts, precision="int8").backend == "tensorrt"
    cpu = choose(facts, device="cpu")  # the CPU was asked for: the GPU is not considered
    assert (cpu.backend, cpu.precision) == ("openvino", "int8")
    assert choose(facts, precision="bf16").backend == "openvino"  # bf16 is a CPU precision


def test_onnx_runtime_cuda_comes_next_then_the_cpu():
    facts = cpu_only(AVX512, onnxruntime_cuda=True)
    choice = choose(facts)
    assert (choice.backend, choice.precision) == ("onnxruntime", "auto")  # on CUDA: ONNX Runtime's own fp32
    assert choice.log_line("auto", "auto") == (f"backend auto chose onnxruntime: TensorRT cannot run here: {NO_TRT}; "
                                               "ONNX Runtime has its CUDA provider")
    named = choose(facts, backend="onnxruntime")  # on CUDA, nothing for auto to decide
    assert (named.backend, named.precision) == ("onnxruntime", "auto")
    on_cpu = choose(facts, device="cpu", backend="onnxruntime")
    assert on_cpu.precision == "fp32"


def test_the_log_line_says_backend_and_precision():
    choice = choose(cpu_only(AVX512))
    assert choice.log_line("auto", "auto").startswith("backend auto chose openvino with precision bf16: ")
    choice = choose(cpu_only(AVX512), precision="fp32")
    assert choice.log_line("auto", "fp32").startswith("backend auto chose onnxruntime for precision fp32: ")


# -- gathering the facts, and the factory ------------------------------------------------------
def test_device_cpu_never_probes_the_gpu(monkeypatch):
    from segnet_ros.backends import onnxruntime_backend, tensorrt_backend

    def forbidden():
        raise AssertionError("probed the GPU although the CPU was asked for")

    monkeypatch.setattr(tensorrt_backend, "probe", forbidden)
    monkeypatch.setattr(onnxruntime_backend, "cuda_available", forbidden)
    facts = backends.detect_facts("auto", BackendOptions(device="cpu"))
    assert facts.tensorrt == "" and not facts.onnxruntime_cuda


def test_the_int8_lookup_is_made_only_for_precision_auto(oracle_dir, monkeypatch):
    from segnet_ros.backends import qdq

    looked_up = []
    monkeypatch.setattr(qdq, "vetted_qdq_model", lambda onnx: looked_up.append(onnx))
    onnx = ModelFiles.in_folder(oracle_dir).onnx
    backends.detect_facts("auto", BackendOptions(device="cpu", precision="fp32"), onnx)
    assert looked_up == []
    backends.detect_facts("auto", BackendOptions(device="cpu"), onnx)
    assert looked_up == [onnx]


@pytest.mark.parametrize("asked", ["auto", "onnxruntime"])
def test_create_backend_follows_the_choice_and_logs_one_line(oracle_dir, monkeypatch, caplog, asked):
    """An AVX2 machine without an INT8 model: ONNX Runtime FP32, whatever this machine really is."""
    monkeypatch.setattr(backends, "detect_facts", lambda *args, **kwargs: cpu_only(AVX2))
    model = load_model(ModelFiles.in_folder(oracle_dir))
    with caplog.at_level(logging.DEBUG, logger="segnet_ros.backends"):
        backend = create_backend(asked, model, BackendOptions(device="cpu"))
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")
    info = [r.message for r in caplog.records if r.name == "segnet_ros.backends" and r.levelno == logging.INFO]
    debug = [r.message for r in caplog.records if r.name == "segnet_ros.backends" and r.levelno == logging.DEBUG]
    if asked == "auto":  # one short line names what runs; the reason is for --verbose
        assert info == ["backend auto chose onnxruntime (cpu, fp32)"]
        assert len(debug) == 1 and debug[0].startswith("backend auto chose onnxruntime with precision fp32: "), debug
    else:  # a named backend running its own default (fp32) is no news: the CLI's error lines stay alone
        assert info == []


def test_a_named_precision_is_not_announced(oracle_dir, caplog):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    with caplog.at_level(logging.INFO, logger="segnet_ros.backends"):
        backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", precision="fp32"))
    assert backend.precision == "fp32" and not [r for r in caplog.records if r.name == "segnet_ros.backends"]


def test_unknown_backend_names_the_choices(oracle_dir):
    with pytest.raises(ValueError, match="backend must be one of auto, onnxruntime, openvino, tensorrt"):
        create_backend("tflite", load_model(ModelFiles.in_folder(oracle_dir)))
