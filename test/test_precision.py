"""bf16_is_fast: what the CPU says it computes natively, and where it holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from abspose.precision import bf16_is_fast


def test_cpu_answer_matches_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this system (the flags are read from it)")
    flags = set(cpuinfo.read_text().split())
    assert bf16_is_fast("cpu") == bool({"avx512_bf16", "amx_tile"} & flags)


def test_other_devices():
    assert bf16_is_fast("meta") is False
    if torch.cuda.is_available():
        assert bf16_is_fast("cuda") == torch.cuda.is_bf16_supported()
