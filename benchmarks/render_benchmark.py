"""Every product of one new grid: ours, the idiomatic OpenCV way, and copying the output bytes once.

At 1280x720 and 1920x1080 (bgr8 input, a 512x256 network, 16x8 grid, 21 classes, random logits, a new
grid every round): pre-processing, then class mask, confidence, colour mask, overlay and histogram at
the input size, on one core. The idiomatic way is what a hand-written node does: normalise with numpy,
``cv2.resize`` the grid (nearest) and the palette-coloured grid (bilinear), ``cv2.addWeighted`` over the
frame, ``np.bincount`` the mask, each call returning a new array as such code does; ours draws into
reused buffers, as the node does into its messages. The copy is ``np.copyto`` of every output buffer
from another of its size. The "numpy floor" is the few calls any float32 implementation of the
reference's truncated blend made of numpy and OpenCV calls must make (see :func:`passes`). They all take
turns round by round, so a busy machine slows them alike; the ratios are medians of the per-round ratios.
Run: ``make benchmark`` or ``python benchmarks/render_benchmark.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.threads import reserve_cores_for_inference

reserve_cores_for_inference()  # as in the node and the CLI: one thread each for OpenBLAS and OpenCV

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from segnet_ros.core.classes import ClassTable  # noqa: E402
from segnet_ros.core.classify import classify  # noqa: E402
from segnet_ros.core.frames import encoding  # noqa: E402
from segnet_ros.core.preprocess import MEAN, STD, Preprocessor  # noqa: E402
from segnet_ros.core.render import Renderer  # noqa: E402

SIZES = ((1280, 720), (1920, 1080))
NET_W, NET_H, GRID_W, GRID_H, CLASSES, ALPHA = 512, 256, 16, 8, 21, 150
GRIDS = 8  # distinct random grids, taken in turn: every round renders a new one
TARGETS = {(1280, 720): 4.3, (1920, 1080): 2.6}  # speed-up over the idiomatic way, issue 16
COPY_TARGET = 3.0  # at 1920x1080, one frame at most this many times one copy of its output bytes
STAGES = ("preprocess", "class mask", "confidence", "colour mask", "overlay", "histogram")


class Scene:
    """One input size: the frame, the grids, and the output buffers every contender reuses."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, height
        self.frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        self.table = ClassTable.build(CLASSES).rgba(ALPHA)
        self.grids = []
        for _ in range(GRIDS):
            grid, confidence = classify(rng.normal(size=(1, CLASSES, GRID_H, GRID_W)).astype(np.float32))
            self.grids.append((grid, confidence))
        self.turn = 0
        self.mask = np.empty((height, width), np.uint8)
        self.confidence = np.empty((height, width), np.uint8)
        self.colour = np.empty((height, width, 3), np.uint8)
        self.overlay = np.empty((height, width, 3), np.uint8)
        self.outputs = (self.mask, self.confidence, self.colour, self.overlay)

    def next_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """A new grid object each call (copies), so nothing can be reused from an earlier frame."""
        grid, confidence = self.grids[self.turn % GRIDS]
        self.turn += 1
        return grid.copy(), confidence.copy()


def ours(scene: Scene) -> dict:
    preprocessor, renderer, bgr = Preprocessor(NET_W, NET_H), Renderer(GRID_W, GRID_H), encoding("bgr8")
    w, h, s = scene.width, scene.height, scene

    def confidence(c):
        return renderer.upsample((c * np.float32(255.0)).astype(np.uint8), w, h, s.confidence)

    stages = {
        "preprocess": lambda g, c: preprocessor(s.frame, "bgr8"),
        "class mask": lambda g, c: renderer.class_mask(g, w, h, s.mask),
        "confidence": lambda g, c: confidence(c),
        "colour mask": lambda g, c: renderer.color_mask(g, s.table, w, h, "linear", s.colour),
        "overlay": lambda g, c: renderer.overlay(g, s.table, s.frame, bgr, w, h, "linear", s.overlay),
        "histogram": lambda g, c: renderer.histogram(g, CLASSES, w, h),
    }

    def frame(g, c):
        """As a fully subscribed node would render it: colour mask and overlay from one pass."""
        preprocessor(s.frame, "bgr8")
        renderer.class_mask(g, w, h, s.mask)
        confidence(c)
        renderer.color_mask_and_overlay(g, s.table, s.frame, bgr, w, h, "linear", s.colour, s.overlay)
        renderer.histogram(g, CLASSES, w, h)

    def separately(g, c):
        """The same, with the colour mask and the overlay drawn by their own calls."""
        for stage in STAGES:
            stages[stage](g, c)

    return {"stages": stages, "frame": frame, "separately": separately}


def idiomatic(scene: Scene) -> dict:
    s, size = scene, (scene.width, scene.height)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    palette = s.table[:, :3].astype(np.uint8)
    a = float(ALPHA) / 255.0

    def preprocess(g, c):
        rgb = cv2.cvtColor(cv2.resize(s.frame, (NET_W, NET_H)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return ((rgb - mean) / std).transpose(2, 0, 1)[None].copy()

    def colour(g, c):
        return cv2.resize(palette[g], size, interpolation=cv2.INTER_LINEAR)

    def overlay(g, c):
        return cv2.addWeighted(s.frame, 1.0 - a, cv2.cvtColor(colour(g, c), cv2.COLOR_RGB2BGR), a, 0.0)

    def histogram(g, c):
        return np.bincount(cv2.resize(g, size, interpolation=cv2.INTER_NEAREST).ravel(), minlength=CLASSES)

    stages = {
        "preprocess": preprocess,
        "class mask": lambda g, c: cv2.resize(g, size, interpolation=cv2.INTER_NEAREST),
        "confidence": lambda g, c: cv2.resize((c * 255).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST),
        "colour mask": colour,
        "overlay": overlay,
        "histogram": histogram,
    }

    def frame(g, c):
        preprocess(g, c)
        mask = cv2.resize(g, size, interpolation=cv2.INTER_NEAREST)
        cv2.resize((c * 255).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        colours = colour(g, c)
        cv2.addWeighted(s.frame, 1.0 - a, cv2.cvtColor(colours, cv2.COLOR_RGB2BGR), a, 0.0)
        np.bincount(mask.ravel(), minlength=CLASSES)

    return {"stages": stages, "frame": frame}


def copy_once(scene: Scene):
    sources = [np.random.default_rng(1).integers(0, 256, out.shape, dtype=np.uint8) for out in scene.outputs]

    def frame(g, c):
        for source, out in zip(sources, scene.outputs, strict=True):
            np.copyto(out, source)

    return frame


def passes(scene: Scene):
    """What any float32 blend built from numpy and OpenCV calls pays per frame, without our logic: the
    pre-processing's bilinear resize and normalisation, and four passes over the colour pixels (the
    colours as one product, the colour mask's conversion to uint8, the blend, the overlay's conversion),
    in tiles of our size. Each call is near memory speed; a fused native kernel would make one pass."""
    width, height = scene.width, scene.height
    rows = max(4, (1 << 20) // (width * 12))
    lerp = np.ones((rows, 2), np.float32)
    steps = np.random.default_rng(2).random((2, width * 3), dtype=np.float32) * 100
    colour = np.empty((rows, width * 3), np.float32)
    flat_frame = scene.frame.reshape(height, -1)
    flat_colour, flat_overlay = scene.colour.reshape(height, -1), scene.overlay.reshape(height, -1)
    resized = np.empty((NET_H, NET_W, 3), np.uint8)
    tensor = np.empty((3, NET_H, NET_W), np.float32)
    table = np.linspace(-2, 2, 256, dtype=np.float32)

    def frame(g, c):
        cv2.resize(scene.frame, (NET_W, NET_H), dst=resized, interpolation=cv2.INTER_LINEAR)
        for channel, plane in enumerate(cv2.split(resized)):
            cv2.LUT(plane, table, dst=tensor[channel])
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            tile = colour[:stop - start]
            np.matmul(lerp[:stop - start], steps, out=tile)
            np.copyto(flat_colour[start:stop], tile, casting="unsafe")
            cv2.accumulateWeighted(flat_frame[start:stop], tile, 0.4)
            np.copyto(flat_overlay[start:stop], tile, casting="unsafe")

    return frame


def rounds(scene: Scene, contenders: dict, repeat: int) -> dict[str, list[float]]:
    """Milliseconds per round for each contender, taking turns in a rotating order after a warm-up."""
    names = list(contenders)
    for name in names:
        contenders[name](*scene.next_grid())
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeat):
        for name in names[index % len(names):] + names[:index % len(names)]:
            grid, confidence = scene.next_grid()
            start = time.perf_counter()
            contenders[name](grid, confidence)
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def median(values) -> float:
    return float(np.median(values))


def report(scene: Scene, repeat: int) -> None:
    fast, slow = ours(scene), idiomatic(scene)
    per_stage = {}
    for stage in STAGES:
        t = rounds(scene, {"ours": fast["stages"][stage], "idiomatic": slow["stages"][stage]}, repeat)
        per_stage[stage] = (median(t["ours"]), median(t["idiomatic"]))
    t = rounds(scene, {"ours": fast["frame"], "idiomatic": slow["frame"], "copy": copy_once(scene),
                       "separately": fast["separately"], "passes": passes(scene)}, repeat)
    speedup = median(np.array(t["idiomatic"]) / np.array(t["ours"]))
    over_copy = median(np.array(t["ours"]) / np.array(t["copy"]))
    best = {name: min(values) for name, values in t.items()}  # what each costs when nothing interrupts it
    size = (scene.width, scene.height)
    megabytes = sum(out.nbytes for out in scene.outputs) / 1e6
    print(f"\n{scene.width}x{scene.height} bgr8 input, {GRID_W}x{GRID_H} grid, {CLASSES} classes, "
          f"linear filter, alpha {ALPHA}")
    print(f"{'stage':<14}{'segnet_ros ms':>15}{'idiomatic ms':>14}{'speed-up':>10}")
    for stage, (ours_ms, slow_ms) in per_stage.items():
        print(f"{stage:<14}{ours_ms:>15.2f}{slow_ms:>14.2f}{slow_ms / ours_ms:>9.1f}x")
    target = TARGETS.get(size)
    verdict = f" (target >= {target}x: {'met' if speedup >= target else 'NOT met'})" if target else ""
    print(f"{'one frame':<14}{median(t['ours']):>15.2f}{median(t['idiomatic']):>14.2f}{speedup:>9.1f}x{verdict}"
          "   every product of one new grid, colour mask and overlay in one pass")
    verdict = (f" (target <= {COPY_TARGET}x: {'met' if over_copy <= COPY_TARGET else 'NOT met'})"
               if size == (1920, 1080) else "")
    print(f"{'copy once':<14}{median(t['copy']):>15.2f}{'':>14}{'':>10}"
          f"   np.copyto of the {megabytes:.1f} MB of outputs; one frame = {over_copy:.2f}x the copy{verdict}")
    apart = median(np.array(t["idiomatic"]) / np.array(t["separately"]))
    print(f"{'two calls':<14}{median(t['separately']):>15.2f}{'':>14}{apart:>9.1f}x"
          "   the same frame with colour mask and overlay drawn by separate calls")
    floor = median(np.array(t["idiomatic"]) / np.array(t["passes"]))
    budget = f"; the target's budget is {median(t['idiomatic']) / target:.2f} ms" if target else ""
    print(f"{'numpy floor':<14}{median(t['passes']):>15.2f}{'':>14}{floor:>9.1f}x"
          f"   resize + normalise + 4 float32 passes over the colour pixels, nothing else{budget}")
    print(f"{'best of run':<14}{best['ours']:>15.2f}{best['idiomatic']:>14.2f}"
          f"{best['idiomatic'] / best['ours']:>9.1f}x   fastest round of each; copy {best['copy']:.2f} ms, "
          f"one frame = {best['ours'] / best['copy']:.2f}x the copy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40, help="rounds per measurement")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    print(f"{cpu_info().describe()}; OpenCV {cv2.__version__}, numpy {np.__version__}, one thread; "
          f"medians of {repeat} rounds, contenders taking turns")
    rng = np.random.default_rng(0)
    for width, height in SIZES:
        report(Scene(width, height, rng), repeat)


if __name__ == "__main__":
    main()
