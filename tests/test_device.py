"""hwnas/evaluate/device.py: --compute auto takes a GPU only when there is one; a missing one is a clear error."""
import pytest
import torch

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.device import device_of, resolve_device, to_cpu

from conftest import run_cli

cuda = torch.cuda.is_available()


def test_auto_takes_the_gpu_only_when_torch_sees_one():
    assert resolve_device("auto") == torch.device("cuda:0" if cuda else "cpu")
    assert resolve_device(None) == resolve_device("auto") and resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0", ""])
def test_unknown_devices_are_refused_with_the_choices(spec):
    if spec == "":
        assert resolve_device(spec) == resolve_device("auto")  # empty means the default
        return
    with pytest.raises(EvaluatorError, match="is not one of auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.skipif(cuda, reason="checks the error on a machine without a CUDA GPU")
def test_cuda_without_a_gpu_says_what_torch_sees():
    with pytest.raises(EvaluatorError, match="sees no CUDA GPU.*--compute cpu"):
        resolve_device("cuda")
    r = run_cli("supernet", "--space", "demo", "--data", "digits", "--compute", "cuda", "--epochs", "1", "--out",
                "/tmp/never.pt")
    assert r.returncode == 2 and "sees no CUDA GPU" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # the old spelling still works for one release, with a warning line naming the new one
    r = run_cli("supernet", "--space", "demo", "--data", "digits", "--device", "cuda", "--epochs", "1", "--out",
                "/tmp/never.pt")
    assert r.returncode == 2 and "sees no CUDA GPU" in r.stderr, r.stderr
    assert "warning: --device is deprecated, use --compute" in r.stderr


def test_checkpoint_state_goes_to_the_cpu():
    net = torch.nn.Linear(2, 2).to(resolve_device("auto"))
    state = to_cpu({"state": net.state_dict(), "opt": [{"momentum": torch.zeros(2, device=device_of(net))}], "n": 3})
    assert all(t.device.type == "cpu" for t in state["state"].values())
    assert state["opt"][0]["momentum"].device.type == "cpu" and state["n"] == 3


@pytest.mark.skipif(not cuda, reason="no CUDA GPU on this machine (torch.cuda.is_available() is False)")
def test_short_training_on_the_gpu_returns_a_cpu_model(demo, tiny_data):
    from hwnas.evaluate.data import load_data
    from hwnas.evaluate.train import train_arch

    r = train_arch(demo.smallest(), load_data(tiny_data), max_epochs=1, patience=0, device="cuda")
    assert device_of(r.model).type == "cpu" and 0 <= r.best_val_acc <= 100
