"""``segnet-ros bag``'s throughput against the bare backend's, same model, same frames, same run.

A bag of N camera frames (raw rgb8, or JPEG with --compressed) is written to a temporary folder.
"bare backend" is ``backend.run`` alone on those frames' prepared tensors, one call at a time with
the runtime's own thread count: the most a plain loop reaches. "bag pipeline" is the whole tool minus
start-up, as ``segnet-ros bag`` sets it up (``--workers``: on the CPU, one single-threaded ONNX
Runtime call per core): read, decode, pre-process, infer, classify, render every output, serialise
and write the MCAP bag. The two are measured alternately
``--repeat`` times; each pair's ratio is taken (so a busy moment on a shared machine hits both
sides of a pair alike) and the median ratio reported. Target: bag / bare >= 0.9.

Run: ``python benchmarks/bag_benchmark.py [--frames 60] [--width 640 --height 480] [--compressed]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.threads import reserve_cores_for_inference

reserve_cores_for_inference()  # as in the CLI: one thread each for OpenBLAS and OpenCV

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from segnet_ros.backends import BackendOptions, create_backend  # noqa: E402
from segnet_ros.backends.base import threads_per_caller  # noqa: E402
from segnet_ros.bag.pipeline import BagPipeline, BagSettings, default_workers  # noqa: E402
from segnet_ros.bag.reader import BagReader  # noqa: E402
from segnet_ros.bag.topics import plan_topics  # noqa: E402
from segnet_ros.bag.typestore import typestore  # noqa: E402
from segnet_ros.bag.writer import BagWriter, Messages  # noqa: E402
from segnet_ros.core.frames import encoding  # noqa: E402
from segnet_ros.core.model import load_model  # noqa: E402
from segnet_ros.core.preprocess import Preprocessor  # noqa: E402
from segnet_ros.core.segnet import SegNet  # noqa: E402
from segnet_ros.selection import select_model  # noqa: E402

TOPIC = "/camera/image_raw"


def frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """Smooth, camera-like RGB frames (JPEG sizes like a real scene's, not like noise)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        phase = i * 0.2
        r = 127 + 120 * np.sin(xs / 37.0 + phase)
        g = 127 + 120 * np.sin(ys / 23.0 - phase)
        b = 127 + 120 * np.sin((xs + ys) / 51.0 + 2 * phase)
        out.append(np.dstack([r, g, b]).astype(np.uint8))
    return out


def write_bag(path: Path, images: list[np.ndarray], compressed: bool) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store, messages = typestore(), Messages()
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(TOPIC, msgtype, typestore=store)
        for i, rgb in enumerate(images):
            stamp = 1_700_000_000_000_000_000 + i * 33_333_333
            header = messages.header(stamp, "camera")
            if compressed:
                ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
                msg = store.types[msgtype](header=header, format="jpeg", data=jpeg.reshape(-1))
                data = store.serialize_cdr(msg, msgtype)
            else:
                data = messages.image(header, rgb, "rgb8")
            writer.write(connection, stamp + 1_000_000, data)


def bare(backend, tensors: list[np.ndarray]) -> tuple[float, float]:
    """(frames/s, process CPU ms per frame) of backend.run alone."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for tensor in tensors:
        backend.run(tensor)
    return len(tensors) / (time.perf_counter() - start), (time.process_time() - cpu_start) * 1e3 / len(tensors)


def pipeline(net: SegNet, bag: Path, out: Path, count: int, workers: int) -> tuple[float, float]:
    """(frames/s, process CPU ms per frame) of the whole bag tool after start-up."""
    start, cpu_start = time.perf_counter(), time.process_time()
    with BagReader(bag) as reader:
        plans, _ = plan_topics(reader, [])
        writer = BagWriter(out, overwrite=True).open()
        summary = BagPipeline(reader, writer, net, plans, BagSettings(workers=workers)).run()
        writer.finish()
    assert summary.frames == count, summary
    return count / (time.perf_counter() - start), (time.process_time() - cpu_start) * 1e3 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--compressed", action="store_true", help="JPEG frames (sensor_msgs/CompressedImage)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    parser.add_argument("--workers", type=int, default=0, help="the bag tool's inference threads (0: as it chooses)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    model = load_model(select_model(args.model))
    backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", threads=args.threads))
    workers = args.workers or default_workers()
    bag_options = BackendOptions(device="cpu", threads=args.threads, callers=workers)
    net = SegNet(model, create_backend("onnxruntime", model, bag_options))
    images = frames(args.frames, args.width, args.height)
    prepare = Preprocessor(model.input_width, model.input_height, net.settings.resize)
    tensors = [prepare.prepare(image, encoding("rgb8")).copy() for image in images]
    with tempfile.TemporaryDirectory() as folder:
        bag = Path(folder) / "in"
        write_bag(bag, images, args.compressed)
        size_mb = sum(p.stat().st_size for p in bag.iterdir()) / 1e6
        bare(backend, tensors[:3])  # warm-up
        pipeline(net, bag, Path(folder) / "out", args.frames, workers)
        bare_runs, bag_runs = [], []
        for _ in range(args.repeat):
            bare_runs.append(bare(backend, tensors))
            bag_runs.append(pipeline(net, bag, Path(folder) / "out", args.frames, workers))
    bare_fps, bare_cpu = [r[0] for r in bare_runs], statistics.median(r[1] for r in bare_runs)
    bag_fps, bag_cpu = [r[0] for r in bag_runs], statistics.median(r[1] for r in bag_runs)
    bare_median, bag_median = statistics.median(bare_fps), statistics.median(bag_fps)
    ratios = [b / a for a, b in zip(bare_fps, bag_fps, strict=True)]
    kind = "JPEG CompressedImage" if args.compressed else "raw rgb8 Image"
    print(f"CPU: {cpu_info().describe()}")
    print(f"model: {model.name} ({model.input_width}x{model.input_height}, {model.num_classes} classes) on "
          f"{backend.describe()}")
    print(f"bag: {args.frames} frames of {args.width}x{args.height} {kind}, {size_mb:.1f} MB; every output written")
    print(f"bare backend run: {bare_median:.1f} fps ({1e3 / bare_median:.1f} ms/frame; runs "
          f"{', '.join(f'{v:.1f}' for v in bare_fps)})")
    print(f"bag pipeline ({workers} inference thread{'s' if workers > 1 else ''} of "
          f"{threads_per_caller(bag_options) or 'default'} each): {bag_median:.1f} fps "
          f"({1e3 / bag_median:.1f} ms/frame; runs "
          f"{', '.join(f'{v:.1f}' for v in bag_fps)})")
    print(f"process CPU per frame: bare {bare_cpu:.1f} ms, bag {bag_cpu:.1f} ms "
          f"(+{bag_cpu - bare_cpu:.1f} ms: decode, pre-processing, argmax, rendering, writing)")
    print(f"bag / bare backend: {statistics.median(ratios):.2f}x, median of {len(ratios)} pairs "
          f"({', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.9)")


if __name__ == "__main__":
    main()
