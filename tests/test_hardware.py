"""The hw.* fingerprint: keys, string values, and values consistent with this machine."""

from __future__ import annotations

import os
import socket

import pytest
import torch

from sedwatt.errors import SedwattError
from sedwatt.hardware import HW_TAG_KEYS, cpu_model_name, hardware_tags, resolve_device, used_cuda_index


def test_keys_and_types():
    tags = hardware_tags()
    assert tuple(tags) == HW_TAG_KEYS
    assert all(isinstance(value, str) and value for value in tags.values())


def test_values_match_this_machine():
    tags = hardware_tags()
    assert tags["hw.cpu_count"] == str(os.cpu_count())
    assert tags["hw.hostname"] == socket.gethostname()
    assert tags["hw.torch"] == torch.__version__
    assert float(tags["hw.ram_gb"]) > 0.1
    if torch.cuda.is_available():
        assert tags["hw.gpu_model"] == torch.cuda.get_device_name(torch.cuda.current_device())
        assert int(tags["hw.gpu_count"]) == torch.cuda.device_count()
        assert tags["hw.cuda"] == str(torch.version.cuda)
    else:
        assert (tags["hw.gpu_model"], tags["hw.gpu_count"], tags["hw.cuda"]) == ("none", "0", "none")


def test_cpu_device_means_no_gpu_even_where_one_exists():
    tags = hardware_tags(device="cpu")
    assert (tags["hw.gpu_model"], tags["hw.gpu_count"], tags["hw.cuda"]) == ("none", "0", "none")
    assert used_cuda_index("cpu") is None


def test_resolve_device_reads_train_device_as_training_and_evaluation_do():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SedwattError, match="train.device=cuda:1: CUDA is not available"):
            resolve_device("cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps_names_the_setting():
    with pytest.raises(SedwattError, match=r"^train\.device=mps: MPS is not available on this machine$"):
        resolve_device("mps")


def test_a_cuda_index_past_the_visible_devices_names_the_setting():
    """Checked where the setting is read, not left to a RuntimeError from the first tensor moved."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(SedwattError, match=rf"^train\.device=cuda:{count}: "):
        resolve_device(f"cuda:{count}")
    assert used_cuda_index(f"cuda:{count}") is None  # the probe never raises
    if count:
        assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)


def test_the_index_check_counts_the_visible_devices(monkeypatch):
    """The count check on a machine without CUDA: torch.device("cuda:N") needs no driver, only the count does."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(SedwattError, match=r"^train\.device=cuda:2: this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)$"):
        resolve_device("cuda:2")
    assert used_cuda_index("cuda:1") == 1 and used_cuda_index(torch.device("cuda", 1)) == 1
    assert used_cuda_index("cuda:2") is None and used_cuda_index("cpu") is None


def test_cpu_model_from_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7763 64-Core Processor\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC  7763 64-Core Processor\n"
    )
    assert cpu_model_name(cpuinfo) == "AMD EPYC 7763 64-Core Processor"


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux /proc")
def test_cpu_model_is_the_kernel_name():
    with open("/proc/cpuinfo") as handle:
        names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    if names:
        assert hardware_tags()["hw.cpu_model"] == " ".join(names[0].split())


def test_probe_makes_no_network_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("hardware_tags tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hardware_tags()["hw.hostname"]
