"""A stand-in for PyTorch where it is not installed (tests/scripts/test_device_check.sh,
the CPU-as-device run of scripts/rehearse-device-check.sh): what the facts probe
of scripts/device-check.sh reads, nothing more. Its version says "stub", so no
summary line that names it passes for a real PyTorch; bench/torch_baseline.py
cannot run on it (BENCH_BASELINE=stub_torch_baseline.py stands in for that)."""

import types

__version__ = "0.0+stub"
version = types.SimpleNamespace(cuda=None)
cuda = types.SimpleNamespace(is_available=lambda: False)
