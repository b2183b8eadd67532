"""The benchmark environment of this machine; the same code runs on devices (device_runner)."""

from edgequant.bench.device_runner import collect_environment as collect

__all__ = ["collect"]
