"""Does this machine fit an artifact's target? Architecture and (on x86) CPU features.

LLVM feature names are mapped onto /proc/cpuinfo flags; features without a known flag are
not checked (listed in docs/artifact_format.md).
"""
from __future__ import annotations

import platform

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# LLVM feature -> /proc/cpuinfo flag, where the names differ
_FLAG = {"sse3": "pni", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "sse4a": "sse4a", "bmi": "bmi1",
         "lzcnt": "abm", "pclmul": "pclmulqdq", "cx16": "cx16", "avx512vnni": "avx512_vnni",
         "avx512vbmi": "avx512vbmi", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
         "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq", "avxvnni": "avx_vnni",
         "sahf": "lahf_lm", "sha": "sha_ni", "rdrnd": "rdrand", "fsgsbase": "fsgsbase", "prfchw": "3dnowprefetch"}
_CHECKED = {"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "avx", "avx2", "fma", "f16c", "bmi", "bmi2",
            "popcnt", "lzcnt", "movbe", "aes", "pclmul", "avx512f", "avx512bw", "avx512dq", "avx512cd",
            "avx512vl", "avx512vnni", "avx512vbmi", "avx512bf16", "avx512fp16", "avx512bitalg",
            "avx512vpopcntdq", "avxvnni", "sha", "adx", "xsave", "fma4", "xop", "gfni", "vaes", "vpclmulqdq"}


def machine_arch() -> str:
    """This machine's architecture as it appears in an LLVM triple."""
    m = platform.machine().lower()
    return _ARCH_ALIASES.get(m, m)


def cpu_flags() -> set[str] | None:
    """The x86 CPU flags of this machine, or None where /proc/cpuinfo says nothing."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def missing_features(arch: str, features: list[str]) -> list[str]:
    """The '+feature' entries of an artifact's target this machine lacks (checked on x86 only)."""
    if arch != "x86_64":
        return []
    flags = cpu_flags()
    if flags is None:
        return []
    missing = []
    for f in features:
        name = f.lstrip("+")
        if name in _CHECKED and _FLAG.get(name, name.replace(".", "_")) not in flags:
            missing.append(name)
    return missing
