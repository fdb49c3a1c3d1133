"""The CPU's facts that decide which precision pays here, read from ``/proc/cpuinfo``.

What is fast differs between the CPUs robots carry: BF16 runs natively only with ``avx512_bf16`` or
``amx_bf16`` (elsewhere OpenVINO's BF16 hint runs FP32 at FP32's speed or worse), and ONNX Runtime's
U8S8 INT8 kernels use VNNI where the CPU has it and the saturating ``VPMADDUBSW`` where it does not.
INT8 pays on both kinds, so nothing here makes INT8 depend on VNNI. The facts are a plain frozen
dataclass so the choices built on them can be tested for any CPU without owning one.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

CPUINFO = "/proc/cpuinfo"
# The flags that matter to our choices, in the order they are reported.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                  "amx_tile", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """What this CPU is and which of :data:`RELEVANT_FLAGS` it has."""

    model: str = "unknown CPU"
    flags: frozenset[str] = frozenset()
    cores: int = 1  # logical CPUs this process may use

    @property
    def has_native_bf16(self) -> bool:
        """BF16 arithmetic in hardware (AVX-512 BF16 or AMX): where a BF16 hint really runs BF16."""
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def has_vnni(self) -> bool:
        """INT8 dot products in one instruction (AVX-512 VNNI, AVX-VNNI or AMX INT8)."""
        return any(flag in self.flags for flag in VNNI_FLAGS)

    @property
    def relevant_flags(self) -> tuple[str, ...]:
        """The relevant flags present, in a fixed order (for printing)."""
        return tuple(flag for flag in RELEVANT_FLAGS if flag in self.flags)

    def describe(self) -> str:
        """One line: model, cores and the flags that matter, e.g. ``AMD EPYC, 2 cores: avx2 fma avx512f ...``."""
        flags = " ".join(self.relevant_flags) or "none of " + " ".join(RELEVANT_FLAGS[:2])
        return f"{self.model}, {self.cores} core{'s' if self.cores != 1 else ''}: {flags}"


def parse_cpuinfo(text: str, cores: int = 1) -> CpuInfo:
    """The facts in a ``/proc/cpuinfo`` text (x86 ``flags`` lines; other CPUs simply have none of them)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key in ("model name", "Model", "Hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    return CpuInfo(model=model or platform.machine() or "unknown CPU",
                   flags=frozenset(flag for flag in flags if flag in RELEVANT_FLAGS), cores=max(1, cores))


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, as a container or taskset limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, read once per process; a CPU without ``/proc/cpuinfo`` has no known flags."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        text = ""
    return parse_cpuinfo(text, usable_cores())
