"""Runs whose processes are started from outside nlpbook: ``torchrun``, or Slurm's ``srun``.

Every process runs ``nlpbook.train(args)``. Global rank 0 owns the run folder: the lock, the folder
checks, ``train_args.json`` and ``resumes.jsonl``, the checkpoints (Lightning writes them on rank 0
only) and the export. The other ranks read the same data, train on their share of the batches and
return the export's path. Lightning's own cluster environments read the launcher's variables, so
rank, world size and the machine's address are exactly what ``fit`` will use.

The process group is created here, before any data is read, instead of inside ``fit`` (Lightning
reuses a group that exists): rank 0's decisions (the folder is busy or holds another run, resume
from ``last.ckpt``) reach the others through it, and a step that fails on one rank raises on every
rank (``RunGroup.agree``/``together``). Without it the other ranks would wait in ``fit`` for a
rank 0 that had already exited, until the collective timeout (30 minutes).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from nlpbook.arguments import TrainArguments
from nlpbook.errors import ArgumentError, spell

__all__ = ["Launch", "RunGroup", "external_launch", "check_launch", "run_group"]

T = TypeVar("T")
MULTI_NODE_SECTION = "README: 'Several machines (torchrun, Slurm)'"


@dataclass(frozen=True)
class Launch:
    """How torchrun or srun started this process."""

    launcher: str  # "torchrun" or "srun", for messages
    environment: Any  # Lightning's ClusterEnvironment
    rank: int  # global rank
    world_size: int
    per_node: int  # processes on each machine: one per device

    @property
    def num_nodes(self) -> int:
        return max(1, self.world_size // self.per_node)


def external_launch() -> Launch | None:
    """The launch when torchrun or Slurm started this process; None when nlpbook starts its own.

    The order is Lightning 2.6's (``_AcceleratorConnector._choose_and_init_cluster_environment``):
    torchrun first, since it also runs inside a Slurm job.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        environment: Any = TorchElasticEnvironment()
        world = environment.world_size()
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE") or world)
        launcher = "torchrun"
    elif SLURMEnvironment.detect():
        try:
            environment = SLURMEnvironment()
        except RuntimeError as error:  # e.g. --ntasks without --ntasks-per-node
            raise ArgumentError(" ".join(str(error).split())) from None
        world = environment.world_size()
        per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE") or world)
        launcher = "srun"
    else:
        return None
    return Launch(launcher, environment, environment.global_rank(), world, per_node)


def check_launch(args: TrainArguments) -> None:
    """``devices`` agrees with the processes the launcher started on this machine (one per device)."""
    launch = external_launch()
    if launch is None:
        return
    if launch.world_size % launch.per_node:
        raise ArgumentError(
            f"{launch.launcher} started {launch.world_size} processes, not a multiple of the "
            f"{launch.per_node} per machine; start the same number on every machine ({MULTI_NODE_SECTION})"
        )
    if (args.tpu_cores or args.accelerator == "tpu") and launch.world_size > 1:
        raise ArgumentError(
            f"a TPU run starts its own processes: run it without {launch.launcher} ({MULTI_NODE_SECTION})"
        )
    devices = args.devices.replace(" ", "")
    if devices in ("auto", "-1"):
        return  # one device per process: trainer.devices_and_accelerator uses per_node
    asked = int(devices) if devices.isdigit() else len([d for d in devices.split(",") if d])
    if asked != launch.per_node:
        raise ArgumentError(
            f"{spell('devices', args.devices)} asks for {asked} device(s) on each machine, but "
            f"{launch.launcher} started {launch.per_node} process(es) on this one (one per device): pass "
            f"{spell('devices', launch.per_node)} or {spell('devices', 'auto')} ({MULTI_NODE_SECTION})"
        )


class RunGroup:
    """The processes of one run. With one process (nlpbook's own launches: one device, or
    ``ddp_spawn``, whose extra processes run only ``fit``) every step simply runs here.

    A step must not use the group itself: a rank that failed before its inner exchange would meet
    the others' inner exchange with its outer one, and the ranks would part ways.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, group: Any = None) -> None:
        self.rank, self.world_size, self.group = rank, world_size, group

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    def agree(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank; every rank returns rank 0's result, or raises if any failed."""
        return self._exchange(step, share=True)

    def together(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank; each returns its own result, or every rank raises if any failed."""
        return self._exchange(step, share=False)

    def zero_first(self, step: Callable[[], T]) -> T:
        """``together``, but rank 0 runs ``step`` before the others start it: a corpus that has to be
        downloaded is fetched once, by rank 0, instead of by every process into the same folder."""
        first = self.together(lambda: step() if self.is_zero else None)
        rest = self.together(lambda: None if self.is_zero else step())
        return first if self.is_zero else rest

    def _exchange(self, step: Callable[[], T], share: bool) -> T:
        if self.world_size == 1:
            return step()
        import torch.distributed as dist

        result: Any = None
        failure: BaseException | None = None
        try:
            result = step()
        except Exception as error:  # noqa: BLE001 - every rank must hear of it, then it is re-raised
            failure = error
        sent = (result if share and self.is_zero and failure is None else None, _portable(failure))
        reports: list[Any] = [None] * self.world_size
        dist.all_gather_object(reports, sent, group=self.group)
        if failure is not None:
            raise failure
        for rank, (_, report) in enumerate(reports):
            if report is not None:
                raise _rebuilt(*report, rank)
        return reports[0][0] if share else result


def _portable(error: BaseException | None) -> tuple[type[BaseException], str, dict[str, Any]] | None:
    """An error as (class, one line, attributes), to send to the other ranks: a traceback does not
    travel. The attributes (``DataError``'s path and line, an exit code) go along when they pickle."""
    if error is None:
        return None
    kind: type[BaseException] = type(error)
    state = {name: value for name, value in vars(error).items() if name != "problems"}
    try:
        pickle.dumps(kind)
    except Exception:  # noqa: BLE001 - a class defined inside a function
        kind, state = RuntimeError, {}
    try:
        pickle.dumps(state)
    except Exception:  # noqa: BLE001 - an attribute that does not pickle: the message is enough
        state = {}
    problems = getattr(error, "problems", None)
    text = "; ".join(problems) if problems else str(error)
    return kind, " ".join(text.split()), state


def _rebuilt(kind: type[BaseException], message: str, state: dict[str, Any], rank: int) -> BaseException:
    """The same class, so the command line gives the same one line and exit status on every rank."""
    text = f"on rank {rank}: {message}"
    try:
        error = kind(text)
    except TypeError:  # a constructor that takes more than a message (DataError)
        error = kind.__new__(kind)
        BaseException.__init__(error, text)
    error.__dict__.update(state)
    return error


@contextlib.contextmanager
def run_group(args: TrainArguments) -> Iterator[RunGroup]:
    """This process's place in the run; for a launch from outside, the process group ``fit`` will use.

    The backend is the one Lightning's DDP picks (NCCL for CUDA, gloo otherwise); nlpbook's own
    messages travel on gloo (a CPU group beside NCCL), which needs no GPU assigned yet.
    """
    launch = external_launch()
    if launch is None or launch.world_size == 1:
        yield RunGroup()
        return
    import torch
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout

    created = not dist.is_initialized()
    if created:
        cuda = args.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        environment = launch.environment
        os.environ["MASTER_ADDR"] = environment.main_address
        os.environ["MASTER_PORT"] = str(environment.main_port)
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=default_pg_timeout,  # Lightning's DDP default
        )
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    try:
        yield RunGroup(launch.rank, launch.world_size, group)
    finally:
        if created:
            dist.destroy_process_group()
