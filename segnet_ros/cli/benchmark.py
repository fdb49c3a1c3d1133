"""``segnet-ros benchmark``: every backend x precision that can run here, timed side by side.

What a user runs on a new robot to choose a configuration, and what ``auto`` follows: the bare
``Backend.run`` time of each row, measured in one run with the rows taking turns frame by frame (so
a busy machine slows them alike), warm-up excluded; rows that cannot run say why; then the CPU's
flags, which row ``auto`` picks and whether it is within 5% of the fastest row allowed, and the cost
of pre-processing and rendering at the camera's size (the core's Preprocessor and Renderer, through
SegNet, as the node runs them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..backends import Choice, Facts, choose, create_backend, detect_facts
from ..backends.base import Backend, BackendOptions
from ..backends.cpu import BF16_FLAGS, VNNI_FLAGS
from ..backends.qdq import quantize_command
from ..core.errors import SegnetError
from ..core.model import Model
from ..core.preprocess import Preprocessor
from ..core.segnet import SegNet
from .common import add_model_file_arguments, int_in_range, load_from_args

# Every combination worth timing, fastest-first within each runtime's family.
CANDIDATES = (
    ("tensorrt", "cuda", "fp16"), ("tensorrt", "cuda", "int8"), ("tensorrt", "cuda", "fp32"),
    ("onnxruntime", "cuda", "fp32"),
    ("onnxruntime", "cpu", "fp32"), ("onnxruntime", "cpu", "int8"),
    ("openvino", "cpu", "fp32"), ("openvino", "cpu", "bf16"), ("openvino", "cpu", "int8"),
)
BASELINE = ("onnxruntime", "cpu", "fp32")
FRAME_SIZES = ((1280, 720), (1920, 1080))
AUTO_TOLERANCE = 1.05  # auto's row may be at most 5% slower than the fastest allowed row


@dataclass
class Row:
    """One backend x precision: its timings (ms) or why it cannot run."""

    backend: str
    device: str
    precision: str
    native: bool | None = None  # the hardware runs this precision itself (None: up to the GPU / TensorRT)
    note: str = ""
    reason: str = ""  # why it cannot run ("" where it can)
    times_ms: list[float] = field(default_factory=list)
    auto: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.backend, self.device, self.precision)

    @property
    def available(self) -> bool:
        return not self.reason

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.times_ms)) if self.times_ms else None

    @property
    def p95_ms(self) -> float | None:
        return float(np.percentile(self.times_ms, 95)) if self.times_ms else None

    def label(self) -> str:
        return f"{self.backend} {self.precision}" + (" (cuda)" if self.device == "cuda" else "")


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else (0, 0)
    except ValueError:
        size = (0, 0)
    if not (16 <= size[0] <= 8192 and 16 <= size[1] <= 8192):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each 16..8192, got '{text}'")
    return size


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="time every backend x precision that can run here, side by side",
        description="Time the bare inference of every backend and precision that can run on this machine, "
                    "taking turns frame by frame (warm-up excluded; median and p95), list the ones that "
                    "cannot run with the reason, show the CPU's flags and which row 'auto' picks, and time "
                    "pre-processing and rendering at the camera's size. Default model: the default model "
                    "where it is installed, else the built-in reference network, FCN-ResNet18 at 512x256 (the "
                    "same work as any trained one of that size).")
    add_model_file_arguments(parser, fallback=True)
    group = parser.add_argument_group("benchmark")
    group.add_argument("--runs", type=int_in_range(1, "a number of timed runs 1..10000", 10000), default=30,
                       help="timed runs per row (default 30)")
    group.add_argument("--warmup", type=int_in_range(0, "a number of warm-up runs 0..1000", 1000), default=3,
                       help="untimed runs per row first (default 3)")
    group.add_argument("--threads", type=int_in_range(0, "0 (each runtime decides) or a thread count up to 1024",
                                                      1024), default=0,
                       help="CPU threads for ONNX Runtime and OpenVINO (default 0: each runtime decides)")
    group.add_argument("--input-size", "--input_size", dest="input_size", type=_size, default=(1280, 720),
                       metavar="WxH", help="camera frame size for pre-processing and rendering (default 1280x720)")
    group.add_argument("--backends", default="", metavar="LIST",
                       help="comma-separated backends to time (default: all of tensorrt, onnxruntime, openvino)")
    group.add_argument("--frame-sizes", "--frame_sizes", dest="frame_sizes", type=_sizes,
                       default=FRAME_SIZES, metavar="WxH,...",
                       help="camera sizes of the full-frame rows, host and graph pipelines side by side "
                            "(default 1280x720,1920x1080; 'none' leaves them out)")
    group.add_argument("--frame-runs", "--frame_runs", dest="frame_runs", default=10,
                       type=int_in_range(1, "a number of timed frames 1..10000", 10000),
                       help="timed frames per full-frame row (default 10)")
    group.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of a table")
    parser.set_defaults(run=run)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    if text.strip().lower() == "none":
        return ()
    return tuple(_size(part) for part in text.split(",") if part.strip())


@dataclass
class FrameRow:
    """The full frame on one backend and pipeline at one camera size: camera bytes to every output."""

    row: Row
    pipeline: str
    size: tuple[int, int]
    reason: str = ""
    times_ms: list[float] = field(default_factory=list)
    host_cpu_ms: list[float] = field(default_factory=list)  # the calling thread's CPU outside the engine call

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.times_ms)) if self.times_ms else None


def full_frame(net: SegNet, frame: np.ndarray, buffers: dict) -> float:
    """One frame from camera bytes to every product, as the node publishes them (the pictures into
    reused buffers); the host CPU this thread spent outside the engine call, in ms (not the thread's whole
    CPU time: ONNX Runtime computes on the calling thread too, and that is the engine's)."""
    seg = net.process(frame, "bgr8")
    rendering = time.thread_time()
    seg.class_mask(None, buffers["mask"])
    seg.confidence(None, buffers["confidence"])
    seg.pictures(buffers["color"], buffers["overlay"])
    seg.histogram()
    spent = time.thread_time() - rendering
    timings = seg.timings
    return (timings.preprocess_cpu + timings.classify_cpu) / timings.frames + spent * 1e3


def frame_rows(model: Model, backends: dict[tuple, Backend], rows: list[Row], sizes, runs: int,
               warmup: int = 2) -> list[FrameRow]:
    """Host and graph pipelines of every backend that ran, at every size, taking turns frame by frame."""
    from ..core.segnet import SegNetSettings

    timed: list[tuple[FrameRow, SegNet, np.ndarray, dict]] = []
    out: list[FrameRow] = []
    for row in rows:
        backend = backends.get(row.key)
        if backend is None:
            continue
        for pipeline in ("host", "graph"):
            for size in sizes:
                frame_row = FrameRow(row, pipeline, size)
                out.append(frame_row)
                frame = _camera_frame(size)
                buffers = {"mask": np.empty(frame.shape[:2], np.uint8), "confidence": np.empty(frame.shape[:2],
                                                                                              np.uint8),
                           "color": np.empty(frame.shape, np.uint8), "overlay": np.empty(frame.shape, np.uint8)}
                try:
                    net = SegNet(model, backend, SegNetSettings(), pipeline)
                    for _ in range(warmup):  # the first frame builds the graph, index maps and buffers
                        full_frame(net, frame, buffers)
                except SegnetError as exc:
                    frame_row.reason = " ".join(str(exc).split())
                    continue
                timed.append((frame_row, net, frame, buffers))
    for round_index in range(runs):
        shift = round_index % len(timed) if timed else 0
        for frame_row, net, frame, buffers in timed[shift:] + timed[:shift]:
            started = time.perf_counter()
            cpu = full_frame(net, frame, buffers)
            frame_row.times_ms.append((time.perf_counter() - started) * 1e3)
            frame_row.host_cpu_ms.append(cpu)
    return out


def _native(row: Row, facts: Facts) -> tuple[bool | None, str]:
    """Whether the hardware runs the row's precision itself, and a note saying how."""
    if row.device == "cuda":
        return (True, "") if row.precision == "fp32" else (None, "as the GPU and TensorRT allow")
    if row.precision == "bf16":
        flags = [f for f in BF16_FLAGS if f in facts.cpu.flags]
        return bool(flags), " ".join(flags) or "not native: would run as FP32"
    if row.precision == "int8":
        flags = [f for f in VNNI_FLAGS if f in facts.cpu.flags]
        return True, " ".join(flags) if flags else "no VNNI: 8-bit multiply-adds (VPMADDUBSW)"
    return True, ""


def _unavailable(row: Row, facts: Facts, model: Model) -> str:
    """A short reason a row cannot run, known without trying ("" where it is worth trying)."""
    if row.backend == "tensorrt" and not facts.tensorrt:
        return f"TensorRT cannot run here: {facts.tensorrt_missing}"
    if row.backend == "onnxruntime" and not facts.onnxruntime:
        return "ONNX Runtime is not installed"
    if row.key == ("onnxruntime", "cuda", "fp32") and not facts.onnxruntime_cuda:
        return "ONNX Runtime has no CUDA provider here"
    if row.backend == "openvino" and not facts.openvino:
        return facts.openvino_missing
    if row.precision == "bf16" and not facts.cpu.has_native_bf16:
        return f"bf16: not native on this CPU (neither {' nor '.join(BF16_FLAGS)})"
    if row.precision == "int8" and row.device == "cpu" and not facts.int8_model:
        files = model.files
        return f"int8: no INT8 model of this ONNX file installed; make one with: " \
               f"{quantize_command(files.onnx, input_blob=files.input_blob, output_blob=files.output_blob)}"
    return ""


def _create(row: Row, model: Model, threads: int) -> Backend | None:
    try:
        backend = create_backend(row.backend, model, BackendOptions(device=row.device, precision=row.precision,
                                                                    threads=threads))
    except SegnetError as exc:
        row.reason = " ".join(str(exc).split())
        return None
    if backend.precision != row.precision:  # never time one thing under another's name
        row.reason = f"{row.backend} runs {backend.precision} when asked for {row.precision}"
        backend.close()
        return None
    return backend


def time_rows(rows: list[Row], backends: dict[tuple, Backend], tensor: np.ndarray, runs: int, warmup: int) -> None:
    """Warm every backend up, then let them take turns, one run each per round, starting with another
    row each round: a machine that gets busier or quieter meanwhile affects every row alike."""
    timed = [row for row in rows if row.key in backends]
    for row in timed:
        for _ in range(warmup):
            backends[row.key].run(tensor)
    for round_index in range(runs):
        shift = round_index % len(timed) if timed else 0
        for row in timed[shift:] + timed[:shift]:
            started = time.perf_counter()
            backends[row.key].run(tensor)
            row.times_ms.append((time.perf_counter() - started) * 1e3)


class _Replay(Backend):
    """Hands back logits a real backend computed, so the core's own SegNet times its stages alone."""

    name = "replay"
    device = "cpu"

    def __init__(self, logits: np.ndarray) -> None:
        self._logits = logits

    def run(self, tensor: np.ndarray) -> np.ndarray:
        return self._logits


def stage_times(model: Model, logits: np.ndarray, size: tuple[int, int], runs: int) -> dict[str, list[float]]:
    """Milliseconds per camera frame (bgr8, ``size``) for pre-processing and each rendered product."""
    net = SegNet(model, _Replay(logits))
    frame = _camera_frame(size)
    stages: dict[str, list[float]] = {"preprocess": [], "class mask": [], "colour mask": [], "overlay": [],
                                      "histogram": [], "render (all four)": []}
    for index in range(runs + 1):
        result = net.process(frame, "bgr8")  # a fresh grid each time: nothing comes from a renderer cache
        spent = {"preprocess": result.timings.preprocess}
        for stage, product in (("class mask", result.class_mask), ("colour mask", result.color_mask),
                               ("overlay", result.overlay), ("histogram", result.histogram)):
            started = time.perf_counter()
            product()
            spent[stage] = (time.perf_counter() - started) * 1e3
        spent["render (all four)"] = sum(spent[s] for s in ("class mask", "colour mask", "overlay", "histogram"))
        if index:  # the first frame builds index maps and buffers: warm-up
            for stage, ms in spent.items():
                stages[stage].append(ms)
    return stages


def _wanted(text: str) -> set[str]:
    names = {part.strip() for part in text.split(",") if part.strip()}
    known = {candidate[0] for candidate in CANDIDATES}
    unknown = names - known
    if unknown:
        raise SegnetError(f"--backends: unknown {', '.join(sorted(unknown))}; choose from {', '.join(sorted(known))}")
    return names or known


def auto_verdict(rows: list[Row]) -> tuple[Row | None, Row | None, str]:
    """(auto's row, the fastest allowed row, one sentence). Allowed: every row that ran (an INT8 row
    runs only where an INT8 model is installed, which is the user's consent to INT8)."""
    ran = [row for row in rows if row.median_ms is not None]
    picked = next((row for row in rows if row.auto), None)
    if not ran:
        return picked, None, "no row could run"
    fastest = min(ran, key=lambda row: row.median_ms)
    if picked is None or picked.median_ms is None:
        why = picked.reason if picked is not None else "it is not a row of this table"
        return picked, fastest, f"auto's pick did not run here ({why}); the fastest row is {fastest.label()}"
    ratio = picked.median_ms / fastest.median_ms
    if ratio <= AUTO_TOLERANCE:
        return picked, fastest, (f"auto picks {picked.label()} ({picked.median_ms:.1f} ms): within 5% of the "
                                 f"fastest row, {fastest.label()} ({fastest.median_ms:.1f} ms)")
    return picked, fastest, (f"auto picks {picked.label()} ({picked.median_ms:.1f} ms), {100 * (ratio - 1):.0f}% "
                             f"slower than {fastest.label()} ({fastest.median_ms:.1f} ms) on this machine: pass "
                             f"--backend {fastest.backend} --precision {fastest.precision} (or run again if the "
                             "machine was busy)")


def _json_rows(rows: list[Row], stages: dict[str, list[float]], facts: Facts, size: tuple[int, int]) -> list[dict]:
    baseline = next((row.median_ms for row in rows if row.key == BASELINE and row.median_ms), None)
    out = []
    for row in rows:
        out.append({"kind": "inference", "backend": row.backend, "device": row.device, "precision": row.precision,
                    "available": row.available, "reason": row.reason, "native": row.native, "note": row.note,
                    "median_ms": row.median_ms, "p95_ms": row.p95_ms, "runs": len(row.times_ms),
                    "speedup": baseline / row.median_ms if baseline and row.median_ms else None,
                    "auto": row.auto, "cpu": facts.cpu.describe()})
    for stage, times in stages.items():
        out.append({"kind": "stage", "stage": stage, "backend": "core", "device": "cpu", "precision": "uint8",
                    "available": True, "reason": "", "native": True, "note": f"{size[0]}x{size[1]} bgr8",
                    "median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
                    "runs": len(times), "speedup": None, "auto": False, "cpu": facts.cpu.describe()})
    return out


def _json_frames(frames: list[FrameRow], facts: Facts) -> list[dict]:
    return [{"kind": "frame", "backend": f.row.backend, "device": f.row.device, "precision": f.row.precision,
             "native": f.row.native, "pipeline": f.pipeline, "size": f"{f.size[0]}x{f.size[1]}",
             "available": not f.reason, "reason": f.reason, "median_ms": f.median_ms,
             "p95_ms": float(np.percentile(f.times_ms, 95)) if f.times_ms else None,
             "host_cpu_ms": float(np.median(f.host_cpu_ms)) if f.host_cpu_ms else None, "runs": len(f.times_ms),
             "cpu": facts.cpu.describe()} for f in frames]


def _frame_table(frames: list[FrameRow]) -> str:
    if not frames:
        return ""
    lines = ["", "", "the full frame, camera bytes (bgr8) to every output, host and graph pipelines taking turns;",
             "host CPU: the calling thread's CPU outside the engine call (pre-processing, argmax, rendering, copies)",
             f"  {'backend':<22} {'pipeline':<8} {'camera':<10} {'median':>9} {'host CPU':>9}"]
    for f in frames:
        head = f"  {f.row.label():<22} {f.pipeline:<8} {f.size[0]}x{f.size[1]:<5}"
        if f.median_ms is None:
            lines.append(f"{head} {'-':>9} {'-':>9}  cannot run: {f.reason}")
        else:
            lines.append(f"{head} {f.median_ms:>6.1f} ms {float(np.median(f.host_cpu_ms)):>6.2f} ms")
    return "\n".join(lines)


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[value]


def _table(rows: list[Row], stages: dict[str, list[float]], facts: Facts, model: Model, args, verdict: str) -> str:
    baseline = next((row.median_ms for row in rows if row.key == BASELINE and row.median_ms), None)
    lines = [f"CPU: {facts.cpu.describe()} (native BF16: {_yes_no(facts.cpu.has_native_bf16)}, "
             f"VNNI: {_yes_no(facts.cpu.has_vnni)})",
             f"model: {model.name} ({model.input_width}x{model.input_height}, {model.num_classes} classes); "
             f"threads: {args.threads or 'each runtime decides'}; {args.runs} timed runs per row after "
             f"{args.warmup} warm-up, rows taking turns",
             "",
             f"{'backend':<12} {'device':<6} {'precision':<9} {'native':<6} {'median':>9} {'p95':>9} "
             f"{'vs ORT fp32':>11}  note"]
    previous = ""
    for row in rows:
        head = f"{row.backend:<12} {row.device:<6} {row.precision:<9} {_yes_no(row.native):<6}"
        if row.median_ms is None:
            reason = "as above" if row.reason == previous else row.reason
            lines.append(f"{head} {'-':>9} {'-':>9} {'-':>11}  cannot run: {reason}")
            previous = row.reason
            continue
        previous = ""
        speed = f"{baseline / row.median_ms:.2f}x" if baseline else "-"
        mark = "  <- auto" if row.auto else ""
        lines.append(f"{head} {row.median_ms:>6.1f} ms {row.p95_ms:>6.1f} ms {speed:>11}  {row.note}{mark}")
    lines += ["", verdict, "",
              f"pre-processing and rendering of a {args.input_size[0]}x{args.input_size[1]} bgr8 frame "
              f"(network input {model.input_width}x{model.input_height}):"]
    for stage, times in stages.items():
        lines.append(f"  {stage:<18} {np.median(times):6.2f} ms  (p95 {np.percentile(times, 95):.2f} ms)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    wanted = _wanted(args.backends)
    model = load_from_args(args)
    facts = detect_facts("auto", BackendOptions(), model.files.onnx, everything=True)
    auto_key = _auto_key(choose(facts), facts)
    rows, backends = [], {}
    try:
        for backend, device, precision in CANDIDATES:
            if backend not in wanted:
                continue
            row = Row(backend, device, precision)
            row.native, row.note = _native(row, facts)
            row.auto = row.key == auto_key
            row.reason = _unavailable(row, facts, model)
            if row.available:
                created = _create(row, model, args.threads)
                if created is not None:
                    backends[row.key] = created
            rows.append(row)
        if not backends:
            raise SegnetError("no backend can run here: " + "; ".join(f"{r.label()}: {r.reason}" for r in rows))
        tensor = Preprocessor(model.input_width, model.input_height)(_camera_frame(args.input_size), "bgr8").copy()
        time_rows(rows, backends, tensor, args.runs, args.warmup)
        logits = next(iter(backends.values())).run(tensor)
        frames = frame_rows(model, backends, rows, args.frame_sizes, args.frame_runs)
    finally:
        for backend in backends.values():
            backend.close()
    stages = stage_times(model, logits, args.input_size, args.runs)
    _, _, verdict = auto_verdict(rows)
    if args.json:
        print(json.dumps(_json_rows(rows, stages, facts, args.input_size) + _json_frames(frames, facts), indent=1))
    else:
        print(_table(rows, stages, facts, model, args, verdict) + _frame_table(frames))
    if "within 5%" not in verdict:
        print(f"segnet-ros: warning: {verdict}", file=sys.stderr)
    return 0


def _camera_frame(size: tuple[int, int]) -> np.ndarray:
    """A street scene from the demo's camera, bgr8: what a robot's camera might see."""
    from ..demo.scenes import street_frame

    return street_frame(0, *size)


def _auto_key(choice: Choice, facts: Facts) -> tuple[str, str, str]:
    """The table row of what ``auto`` chose (a GPU backend's own auto: TensorRT fp16, ONNX Runtime fp32)."""
    if choice.backend == "tensorrt":
        return ("tensorrt", "cuda", "fp16" if choice.precision == "auto" else choice.precision)
    device = "cuda" if choice.backend == "onnxruntime" and facts.onnxruntime_cuda else "cpu"
    return (choice.backend, device, "fp32" if choice.precision == "auto" else choice.precision)
