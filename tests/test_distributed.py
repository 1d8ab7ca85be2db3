"""Data-parallel training (anogen.distributed): 2 CPU ranks on gloo launched by torchrun against one process, and
``anogen train`` under torchrun writing files on rank 0 only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn

import anogen
from anogen import distributed
from anogen.detector import Detector

TOL = 1e-5
"""rtol / atol of the 2-rank vs 1-process comparison: float summation order only (measured max |diff| ~ 1e-7)"""
TIMEOUT = 60  # seconds a test waits for its processes
N_TRAIN, BATCH, EPOCHS = 64, 8, 3  # 2 ranks x batch 8 against 1 process x batch 16: 4 steps per epoch


@dataclass(kw_only=True)
class TwinNet(Detector):
    """Deterministic, BatchNorm-free, with what breaks naive DDP wrapping: an encoder called twice per step, a critic
    called three times (once inside the autoencoder's loss, whose critic gradients are then discarded), and two
    optimizers stepping different networks. Every loss is a batch mean. Not registered."""

    hidden: int = 16
    lr: float = 1e-2

    input_kind: ClassVar[str] = "vector"

    def build(self, input_shape: tuple[int, ...]) -> None:
        (d,) = input_shape
        self.nets_ = nn.ModuleDict({
            "enc": nn.Sequential(nn.Linear(d, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 4)),
            "dec": nn.Sequential(nn.Linear(4, self.hidden), nn.Tanh(), nn.Linear(self.hidden, d)),
            "critic": nn.Sequential(nn.Linear(d, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1)),
        })
        ae = [*self.nets_["enc"].parameters(), *self.nets_["dec"].parameters()]
        self.opt_ae_ = torch.optim.Adam(ae, lr=self.lr)
        self.opt_c_ = torch.optim.Adam(self.nets_["critic"].parameters(), lr=self.lr)

    def train_step(self, x: Tensor) -> dict[str, float]:
        enc, dec, critic = self.nets_["enc"], self.nets_["dec"], self.nets_["critic"]
        z = enc(x)
        r = dec(z)
        loss_ae = (r - x).pow(2).mean() + 0.1 * (enc(r) - z).pow(2).mean() + 0.1 * critic(r).mean()
        self.opt_ae_.zero_grad(set_to_none=True)
        loss_ae.backward()
        self.opt_ae_.step()
        loss_c = critic(x).pow(2).mean() + (critic(r.detach()) - 1).pow(2).mean()
        self.opt_c_.zero_grad(set_to_none=True)
        loss_c.backward()
        self.opt_c_.step()
        return {"ae": loss_ae.item(), "c": loss_c.item()}

    def score_batch(self, x: Tensor) -> Tensor:
        return (self.nets_["dec"](self.nets_["enc"](x)) - x).pow(2).mean(1)


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return x[d.target == 0][:N_TRAIN], x[:200]


def _fit_twin(batch_size: int) -> TwinNet:
    train, _ = _vectors()
    return TwinNet(epochs=EPOCHS, batch_size=batch_size, seed=3, device="cpu", verbose=False).fit(train)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(out: str) -> None:
    """One rank under torchrun (this file is the script): the process group from torchrun's variables, TwinNet
    (exactness against one process), ALGAN (a GAN with BatchNorm and random latents: ranks must stay consistent),
    then ``anogen train`` into a per-rank folder (only rank 0's may appear). The CLI makes its group with the same
    ``init_from_env``; here it finds ours open (a default group cannot be made twice on one torchrun store)."""
    torch.set_num_threads(1)
    from anogen.cli import main

    assert distributed.init_from_env("cpu", timeout_s=TIMEOUT) and dist.get_backend() == "gloo"
    rank, world = distributed.rank_world()
    _, test = _vectors()
    twin = _fit_twin(BATCH)
    got: dict[str, object] = {
        "world": world, "twin_params": {k: v.tolist() for k, v in twin.nets_.state_dict().items()},
        "twin_scores": twin.decision_function(test).tolist(), "twin_history": twin.history_,
    }
    imgs = np.random.default_rng(0).integers(0, 256, (48, 16, 16), dtype=np.uint8)
    gan = anogen.create("algan", image_size=16, channels=1, width=8, max_width=16, latent_dim=8, epochs=2,
                        batch_size=8, device="cpu", verbose=False, seed=1).fit(imgs)
    got["gan_scores"], got["gan_threshold"] = gan.decision_function(imgs[:8]).tolist(), gan.threshold_
    from test_contract import _tiny  # the contract's tiny sizes (this file's folder is the script's sys.path[0])

    vecs = np.random.default_rng(1).normal(size=(40, 12)).astype(np.float32)
    got["every"] = {}
    for name in anogen.available():  # no deadlock, no divergence between ranks, for every registered detector
        det = anogen.create(name, **{**_tiny(name, 16, 1), "epochs": 2, "device": "cpu"})
        vec = det.input_kind == "vector" or (getattr(det, "backbone", None) == "none" and det.input_kind != "image")
        data = vecs if vec else imgs[:40]
        got["every"][name] = det.fit(data).decision_function(data[:6]).tolist()
    got["cli_rc"] = main(["train", "ae", "--data", "digits:normal=0", "--out", os.path.join(out, f"cli{rank}"),
                          "--preset", "cpu", "--image-size", "8", "--epochs", "1", "--width", "8", "--max-width",
                          "16", "--latent-dim", "8", "--channels", "1", "--device", "cpu", "--no-verbose",
                          "--checkpoint-every", "1"])
    got["group_left_open"] = dist.is_initialized()  # the CLI ends only a group it made
    distributed.shutdown()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(got, f)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[str, list[dict], str]:
    """2 gloo ranks launched by torchrun, with this file as the script."""
    out = str(tmp_path_factory.mktemp("ddp"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", __file__, out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)  # its own process group: a hang is ended with all its ranks
    try:
        stdout, stderr = p.communicate(timeout=TIMEOUT * 2)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"torchrun with 2 ranks did not finish in {TIMEOUT * 2} s")
    assert p.returncode == 0, stdout[-2000:] + stderr[-4000:]
    results = []
    for r in range(2):
        with open(os.path.join(out, f"rank{r}.json")) as f:
            results.append(json.load(f))
    return out, results, stdout


def test_two_ranks_equal_one_process_with_twice_the_batch(two_ranks):
    _, (r0, r1), _ = two_ranks
    one = _fit_twin(2 * BATCH)
    _, test = _vectors()
    worst = 0.0
    for k, v in one.nets_.state_dict().items():
        for got in (r0, r1):
            a = np.asarray(got["twin_params"][k])
            np.testing.assert_allclose(a, v.numpy(), rtol=TOL, atol=TOL, err_msg=k)
            worst = max(worst, float(np.abs(a - v.numpy()).max()))
    np.testing.assert_allclose(r0["twin_scores"], one.decision_function(test), rtol=TOL, atol=TOL)
    for h_dist, h_one in zip(r0["twin_history"], one.history_):  # logged losses are the global batch's
        for k in ("ae", "c"):
            assert h_dist[k] == pytest.approx(h_one[k], rel=TOL)
    print(f"2 ranks x batch {BATCH} vs 1 process x batch {2 * BATCH}, {EPOCHS} epochs: max |param diff| {worst:.2e}")


def test_ranks_end_identical(two_ranks):
    _, (r0, r1), _ = two_ranks
    assert r0["twin_params"] == r1["twin_params"]  # averaged gradients: bit-identical weights on every rank
    assert r0["gan_scores"] == r1["gan_scores"] and r0["gan_threshold"] == r1["gan_threshold"]


def test_every_detector_trains_on_two_ranks(two_ranks):
    _, (r0, r1), _ = two_ranks
    assert set(r0["every"]) == set(anogen.available())
    assert r0["every"] == r1["every"]  # the same model on both ranks


def test_only_rank_zero_writes(two_ranks):
    out, (r0, r1), stdout = two_ranks
    assert r0["world"] == r1["world"] == 2
    assert r0["cli_rc"] == 0 and r1["cli_rc"] == 0
    assert r0["group_left_open"] and r1["group_left_open"]
    written = {f.name for f in os.scandir(os.path.join(out, "cli0"))}
    assert written >= {"model.anogen", "metrics.json", "roc.png", "checkpoint.anogen-ckpt"}, written
    assert not os.path.exists(os.path.join(out, "cli1"))  # rank 1 trained and wrote nothing, checkpoints included
    assert stdout.count("wrote:") == 1  # and printed nothing


def test_single_process_helpers():
    assert distributed.rank_world() == (0, 1) and distributed.is_main()
    assert distributed.global_batch(16, 100) == (16, slice(0, 16))
    assert distributed.global_batch(16, 5) == (5, slice(0, 5))
    assert distributed.mean_losses({"a": 1.5}) == {"a": 1.5}
    assert distributed.rank_seed(7, 0) == 7 and distributed.rank_seed(7, 1) != distributed.rank_seed(7, 2)
    assert not distributed.launched_by_torchrun({"RANK": "0"})
    assert distributed.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert distributed.init_from_env() is False  # not under torchrun: nothing to do
    twin = _fit_twin(BATCH)
    with pytest.raises(ValueError, match="GPUs only"):  # torch's SyncBatchNorm cannot run on CPU / gloo
        distributed._convert_sync_batchnorm(twin)


if __name__ == "__main__":  # a rank launched by torchrun from the two_ranks fixture
    _rank_main(sys.argv[1])
