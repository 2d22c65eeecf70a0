"""Several machines: two "machines" of one CPU process each, started by two ``torchrun --nnodes 2``
commands on loopback (gloo), the way a cluster runs nlpbook; and the pieces that keep the ranks
together (a failure or a signal on one rank reaches all), checked without processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import nlpbook
from nlpbook.arguments import ArgumentError
from nlpbook.checkpoints import LastCheckpoint
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.cluster import RunGroup, check_launch
from nlpbook.corpus import DataError

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("multinode_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")
WAIT = 180  # seconds; a hang (a rank left waiting in a collective) fails the test instead


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nodes:
    """``torchrun --node_rank 0`` and ``--node_rank 1`` of one run; output and records in ``folder``."""

    def __init__(self, folder: Path, options: list[str], **env: str) -> None:
        self.folder, port = folder, free_port()
        folder.mkdir()
        env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env["OMP_NUM_THREADS"] = "1"  # two processes on a shared 2-core machine
        self.agents = []
        for node in (0, 1):
            command = [str(TORCHRUN), "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1"]
            command += ["--master_addr", "127.0.0.1", "--master_port", str(port)]
            command += [str(WORKER), str(folder), "train", "classification", *options]
            with (
                open(folder / f"node{node}.out", "w", encoding="utf-8") as out,
                open(folder / f"node{node}.err", "w", encoding="utf-8") as err,
            ):
                self.agents.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
                )

    def wait(self) -> list[int]:
        try:
            return [agent.wait(timeout=WAIT) for agent in self.agents]
        finally:
            self.kill()

    def kill(self, node: int | None = None) -> None:
        """SIGKILL a machine's processes (both machines' by default): the worker, which torchrun
        starts in a session of its own, then torchrun."""
        for n in (0, 1) if node is None else (node,):
            pid = self.folder / f"pid{n}"
            if pid.is_file():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid.read_text(encoding="utf-8")), signal.SIGKILL)
            if self.agents[n].poll() is None:
                os.killpg(self.agents[n].pid, signal.SIGKILL)
                self.agents[n].wait()

    def text(self, node: int, stream: str = "err") -> str:
        return (self.folder / f"node{node}.{stream}").read_text(encoding="utf-8")

    def records(self, rank: int) -> list[dict]:
        path = self.folder / f"rank{rank}.jsonl"
        return (
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            if path.is_file()
            else []
        )


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside this Python")
def test_two_machines_under_torchrun_lose_one_resume_exactly_and_export_once(tiny_bert, nsmc_root, tmp_path):
    run = tmp_path / "run"
    # The same command both times, --resume included, as a requeued Slurm job runs it. 96 rows in
    # batches of 8: 12 batches an epoch, 6 per machine; 2 epochs, 12 steps; last.ckpt every 4 steps.
    options = ["--pretrained_model_name", str(tiny_bert), "--downstream_corpus_root_dir", str(nsmc_root)]
    options += ["--downstream_model_dir", str(run), "--accelerator", "cpu", "--resume", "--seed", "7"]
    options += ["--batch_size", "8", "--max_train_samples", "96", "--max_eval_samples", "32", "--epochs", "2"]
    options += ["--max_seq_length", "64", "--learning_rate", "3e-3", "--save_every_n_steps", "4"]

    # Machine 1 is lost (kill -9 of torchrun and its process) before step 10: last.ckpt holds step 8,
    # steps 8 and 9 are trained and lost. Machine 0 must not wait for it: it fails and exits.
    first = Nodes(tmp_path / "first", options, HOLD_AT="1:10")
    try:
        deadline = time.monotonic() + WAIT
        while not (first.folder / "held").is_file():
            assert time.monotonic() < deadline and all(a.poll() is None for a in first.agents), (
                first.text(0)[-3000:] + first.text(1)[-3000:]
            )
            time.sleep(0.2)
        first.kill(1)
        assert first.agents[0].wait(timeout=WAIT) != 0
    finally:
        first.kill()
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 8
    saved_args = (run / "train_args.json").read_bytes()

    resumed = Nodes(tmp_path / "resumed", options)
    assert resumed.wait() == [0, 0], resumed.text(0)[-3000:] + resumed.text(1)[-3000:]
    for node in (0, 1):  # no rank refused by the lock; each prints the export's path
        assert resumed.text(node, "out").strip().splitlines()[-1] == str(run / "export")
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 12

    # Rank 0 alone owns the folder: the lock, train_args.json (once; the resume adds a line to
    # resumes.jsonl) and one export, written by the resumed run.
    calls = {
        (nodes.folder.name, rank): [e["call"] for e in nodes.records(rank) if "call" in e]
        for nodes in (first, resumed)
        for rank in (0, 1)
    }
    assert calls == {
        ("first", 0): ["run_lock", "record_run"],
        ("resumed", 0): ["run_lock", "record_run", "write_export"],
        ("first", 1): [],
        ("resumed", 1): [],
    }
    assert (run / "train_args.json").read_bytes() == saved_args
    assert len((run / "resumes.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert nlpbook.predict(run / "export", ["영화 최고"])[0]["label"] in ("negative", "positive")

    for rank in (0, 1):
        lost = {e["step"]: e for e in first.records(rank) if "rows" in e}
        again = {e["step"]: e for e in resumed.records(rank) if "rows" in e}
        assert sorted(lost) == list(range(10)) and sorted(again) == [8, 9, 10, 11]
        # The steps trained twice are the same steps: same rows, same loss (weights, optimizer,
        # dropout and the place in the epoch all came back from last.ckpt).
        for step in (8, 9):
            assert again[step]["rows"] == lost[step]["rows"]
            assert again[step]["loss"] == pytest.approx(lost[step]["loss"], rel=1e-6, abs=1e-7)
    # Each machine trained its own share of the length-grouped batches: every row once an epoch.
    for epoch in (0, 1):
        rows = [
            row
            for nodes in (first, resumed)
            for rank in (0, 1)
            for e in nodes.records(rank)
            if e.get("epoch") == epoch and (e["step"] < 8) == (nodes is first)
            for row in e["rows"]
        ]
        assert sorted(rows) == list(range(96))


def test_a_failure_on_one_rank_raises_on_every_rank(monkeypatch):
    """Rank 0 hears rank 1's one-line error, with its class and attributes (DataError's line)."""
    peer = (None, (DataError, "train.tsv:3: column 'text' is empty", {"path": "train.tsv", "line": 3}))

    def all_gather_object(reports: list, sent: object, group: object = None) -> None:
        reports[:] = [sent, peer]

    monkeypatch.setattr(torch.distributed, "all_gather_object", all_gather_object)
    group = RunGroup(rank=0, world_size=2)
    with pytest.raises(DataError, match="^on rank 1: train.tsv:3: column 'text' is empty$") as raised:
        group.together(lambda: "read")
    assert (raised.value.path, raised.value.line) == ("train.tsv", 3)
    peer = (None, None)
    assert group.agree(lambda: "rank 0's") == "rank 0's"


def test_a_signal_on_any_process_stops_them_all():
    """SIGTERM reached only the other machine (a preemption there): this process stops too."""
    others = torch.tensor([0, 1, 0], dtype=torch.int32)  # elapsed, SIGTERM, SIGINT on the other rank
    strategy = SimpleNamespace(root_device=torch.device("cpu"), reduce=lambda t, reduce_op: t + others)
    callback = LastCheckpoint(Path("last.ckpt"))
    assert callback._agreed(SimpleNamespace(world_size=2, strategy=strategy)) == (False, signal.SIGTERM)


def test_devices_must_match_the_processes_torchrun_started_on_each_machine(monkeypatch, tmp_path):
    """torchrun --nnodes 2 --nproc_per_node 2, as its variables say on machine 0's second process."""
    launched = {"TORCHELASTIC_RUN_ID": "none", "RANK": "1", "LOCAL_RANK": "1", "GROUP_RANK": "0"}
    for name, value in {**launched, "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(name, value)
    check_launch(ClassificationTrainArguments(downstream_model_dir=str(tmp_path), devices="auto"))
    with pytest.raises(ArgumentError, match="asks for 4 device.* started 2 process.* on this one"):
        check_launch(ClassificationTrainArguments(downstream_model_dir=str(tmp_path), devices="4"))
