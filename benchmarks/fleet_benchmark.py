"""Bags per hour of ``segnet-ros bag IN... --output-dir DIR``: embedded against ``--ray`` on this machine,
and Ray's scaling from one simulated node to two.

``--bags`` bags of ``--frames`` camera frames (JPEG CompressedImage, as robots record; raw rgb8 with
``--raw``) are written to a temporary folder. Each figure is one whole job as the command runs it,
with every output written and each bag checked done: the workers' start-up and model loading count,
and Ray's own start-up (``ray.init``), which a long job pays once, is given apart.

- embedded: no Ray; as many bags at a time as the cores allow (on 2 cores: one, with two inference
  threads), the command's default;
- ``--ray``: a local Ray started for the job; one task per bag, one CPU each;
- scaling: ``ray.cluster_utils.Cluster``, one node of one CPU, then a second node of one CPU added (on
  this machine: one more core each).

Embedded and ``--ray`` take turns ``--repeat`` times, and the median of the pairs' ratios is given (a
busy moment on a shared machine then hits both sides of a pair alike). Target: ``--ray`` >= 0.9x the
embedded rate on bags of 100 frames. Every figure names the CPU.

Run: ``python benchmarks/fleet_benchmark.py [--bags 12] [--frames 100] [--repeat 2] [--raw]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bag_benchmark import frames, write_bag  # noqa: E402  (also keeps OpenBLAS and OpenCV to one thread)

from segnet_ros.backends import BackendOptions  # noqa: E402
from segnet_ros.backends.cpu import cpu_info  # noqa: E402
from segnet_ros.bag.fleet import BagJob, EmbeddedRunner, NetSpec, embedded_bags_at_once, plan_tasks, run_job  # noqa: E402
from segnet_ros.bag.pipeline import BagSettings, default_workers  # noqa: E402
from segnet_ros.core.model import load_model  # noqa: E402
from segnet_ros.selection import select_model  # noqa: E402

MIB = 1024 * 1024


def cpu_tag() -> str:
    """The CPU's model name and its AVX2/AVX-512 flags, for beside each figure."""
    info = cpu_info()
    flags = [flag for flag in info.relevant_flags if flag.startswith("avx")]
    return f"[{info.model}, {info.cores} cores: {' '.join(flags) or 'no AVX2/AVX-512'}]"


def timed_job(bags: Path, out: Path, spec: NetSpec, runner_for, expected_frames: int) -> float:
    """Seconds for the whole job (nothing is skipped: the output folder is new)."""
    job = BagJob(str(out), settings=BagSettings(workers=default_workers()))
    tasks = plan_tasks([str(bags)], job)
    runner = runner_for(job)
    started = time.perf_counter()
    outcome = run_job(tasks, job, runner)
    seconds = time.perf_counter() - started
    assert outcome.count("done") == len(tasks) and outcome.frames == expected_frames, \
        [(r.input, r.status, r.error) for r in outcome.records]
    shutil.rmtree(out)
    return seconds


def per_hour(bags: int, seconds: float) -> float:
    return bags * 3600.0 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference)")
    parser.add_argument("--bags", type=int, default=12)
    parser.add_argument("--frames", type=int, default=100, help="frames per bag (default 100)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--raw", action="store_true", help="raw rgb8 Image frames instead of JPEG")
    parser.add_argument("--repeat", type=int, default=2, help="embedded and --ray pairs, taking turns (default 2)")
    parser.add_argument("--no-scaling", dest="scaling", action="store_false", help="leave out the simulated nodes")
    args = parser.parse_args()

    model = load_model(select_model(args.model))
    spec = NetSpec(model.files, "onnxruntime", BackendOptions(device="cpu"))
    tag = cpu_tag()
    total = args.bags * args.frames
    with tempfile.TemporaryDirectory() as folder:
        bags = Path(folder) / "bags"
        images = frames(args.frames, args.width, args.height)
        for i in range(args.bags):
            write_bag(bags / f"bag{i:03d}", images, not args.raw)
        kind = "raw rgb8" if args.raw else "JPEG"
        print(f"CPU: {cpu_info().describe()}")
        print(f"bags: {args.bags} x {args.frames} frames of {args.width}x{args.height} {kind}, every output written; "
              f"model {model.name} ({model.input_width}x{model.input_height}) on ONNX Runtime (CPU)")

        at_once = embedded_bags_at_once(spec, default_workers())
        from segnet_ros.bag.ray_runner import RayRunner, RaySettings, no_cloud_probe

        runners = []

        def ray_runner(job, address="local"):
            runners.append(RayRunner(spec, job, RaySettings(address=address)))
            return runners[-1]

        pairs = []  # (embedded s, --ray s, Ray's start-up s), taking turns: a busy moment hits both alike
        for _ in range(args.repeat):
            embedded = timed_job(bags, Path(folder) / "out", spec, lambda job: EmbeddedRunner(spec, job, at_once),
                                 total)
            on_ray = timed_job(bags, Path(folder) / "out", spec, ray_runner, total)
            pairs.append((embedded, on_ray, runners[-1].connect_seconds))
        embedded, on_ray, start = (statistics.median(p[i] for p in pairs) for i in range(3))
        print(f"embedded ({at_once} bag{'s' if at_once != 1 else ''} at a time, {default_workers()} inference threads "
              f"each): {embedded:.1f} s, {per_hour(args.bags, embedded):.0f} bags/hour (runs "
              f"{', '.join(f'{p[0]:.1f}' for p in pairs)} s)  {tag}")
        print(f"--ray, a local Ray ({runners[-1].describe}): {on_ray:.1f} s, {per_hour(args.bags, on_ray):.0f} "
              f"bags/hour; without Ray's start-up ({start:.1f} s) {per_hour(args.bags, on_ray - start):.0f} "
              f"bags/hour (runs {', '.join(f'{p[1]:.1f}' for p in pairs)} s)  {tag}")
        whole = [p[0] / p[1] for p in pairs]
        steady = [p[0] / (p[1] - p[2]) for p in pairs]
        print(f"--ray / embedded: {statistics.median(whole):.2f}x the whole job, {statistics.median(steady):.2f}x "
              f"without Ray's start-up (median of {len(pairs)} pairs: {', '.join(f'{r:.2f}' for r in whole)}; "
              f"{', '.join(f'{r:.2f}' for r in steady)}; target >= 0.9)  {tag}")

        if args.scaling:
            from ray.cluster_utils import Cluster

            head = {"num_cpus": 1, "include_dashboard": False, "object_store_memory": 128 * MIB}
            with no_cloud_probe():
                cluster = Cluster(initialize_head=True, head_node_args=head)
            try:
                one = timed_job(bags, Path(folder) / "out", spec, lambda job: ray_runner(job, cluster.address), total)
                print(f"Ray, 1 simulated node of 1 CPU: {one:.1f} s, {per_hour(args.bags, one):.0f} bags/hour  {tag}")
                with no_cloud_probe():
                    cluster.add_node(num_cpus=1, object_store_memory=128 * MIB)
                cluster.wait_for_nodes()
                two = timed_job(bags, Path(folder) / "out", spec, lambda job: ray_runner(job, cluster.address), total)
                print(f"Ray, 2 simulated nodes of 1 CPU each: {two:.1f} s, {per_hour(args.bags, two):.0f} bags/hour, "
                      f"{one / two:.2f}x one node  {tag}")
            finally:
                cluster.shutdown()


if __name__ == "__main__":
    main()
