"""One process or many: the rank helpers an audit needs under ``torchrun``.

``torchrun --nproc_per_node=N`` starts N processes and tells each its place through
environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`init_from_env` opens the process group from them (``nccl`` for a
CUDA device, ``gloo`` otherwise) when there is more than one process and no group yet;
:func:`rank`, :func:`world_size` and :func:`is_main` say where this process stands (rank 0
of 1 without a group); :func:`shard` lists the dataset positions a rank audits and
:func:`gather` gives every rank every rank's part. Rank 0 alone writes files (the report,
the records, the baseline); every rank holds the same merged values and reaches the same
verdict.

A foundation module: it imports torch and :mod:`modelaudit.errors`, never a layer.

Example:
    >>> rank(), world_size(), is_main()  # no process group: one process
    (0, 1, True)
    >>> shard(5, rank=1, world_size=2)
    [1, 3]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from modelaudit.errors import InvalidInputError

__all__ = ["gather", "init_from_env", "is_distributed", "is_main", "rank", "shard", "world_size"]

_NEEDED = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """Whether a process group with more than one process is open.

    Example:
        >>> is_distributed()
        False
    """
    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def rank() -> int:
    """This process's rank: the group's, else ``RANK`` from the environment, else 0.

    Example:
        >>> rank()
        0
    """
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return _env_int(os.environ, "RANK", 0)


def world_size() -> int:
    """The number of processes: the group's, else ``WORLD_SIZE`` from the environment, else 1.

    Example:
        >>> world_size()
        1
    """
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return _env_int(os.environ, "WORLD_SIZE", 1)


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files.

    Example:
        >>> is_main()
        True
    """
    return rank() == 0


def init_from_env(
    device: str | torch.device | None = None, *, env: Mapping[str, str] | None = None
) -> bool:
    """Open the process group ``torchrun`` describes, if it describes one and none is open.

    Does nothing (and returns False) without ``WORLD_SIZE`` > 1 in the environment, or when
    a group is already open. Otherwise opens ``nccl`` for a CUDA ``device`` (after
    ``torch.cuda.set_device`` to ``cuda:LOCAL_RANK`` when the device names no index) and
    ``gloo`` for any other device, with ``init_method="env://"``.

    Args:
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); None: cpu.
        env: the environment to read (default ``os.environ``).

    Returns:
        whether this call opened a group.

    Raises:
        InvalidInputError: ``WORLD_SIZE`` > 1 but ``RANK``, ``MASTER_ADDR`` or ``MASTER_PORT`` is
            missing (start the processes with ``torchrun``), torch was built without
            ``torch.distributed``, or a ``cuda:N`` device would put several processes of
            one machine on the same GPU.

    Example:
        >>> init_from_env("cpu", env={})  # not started by torchrun: one process
        False
    """
    env = os.environ if env is None else env
    if _env_int(env, "WORLD_SIZE", 1) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    missing = [name for name in _NEEDED if not env.get(name)]
    if missing or not dist.is_available():
        raise InvalidInputError(
            f"WORLD_SIZE={env.get('WORLD_SIZE')} asks for several processes, but "
            + (f"{', '.join(missing)} is not set" if missing else "torch has no distributed")
            + "; start them with torchrun (python -m torch.distributed.run --nproc_per_node=N)"
        )
    where = torch.device(device if device is not None else "cpu")
    backend = "gloo"
    if where.type == "cuda":
        if where.index is not None and _env_int(env, "LOCAL_WORLD_SIZE", 1) > 1:
            raise InvalidInputError(
                f"device {device!r} under torchrun would put every process on GPU "
                f"{where.index}; pass --audit-device=cuda: each process takes cuda:LOCAL_RANK"
            )
        torch.cuda.set_device(where if where.index is not None else _env_int(env, "LOCAL_RANK", 0))
        backend = "nccl"
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=_env_int(env, "RANK", 0),
        world_size=_env_int(env, "WORLD_SIZE", 1),
    )
    return True


def shard(n: int, *, rank: int, world_size: int) -> list[int]:
    """The positions of an ``n``-item dataset rank ``rank`` audits, in order.

    ``DistributedSampler(shuffle=False, drop_last=False)``'s share (every ``world_size``-th
    item from ``rank``) without the repeats it pads the last round with: the shards are
    disjoint and together hold every position once. A rank may get none (``n`` smaller
    than ``world_size``).

    Example:
        >>> [shard(5, rank=r, world_size=3) for r in range(3)]
        [[0, 3], [1, 4], [2]]
    """
    sampler: DistributedSampler[int] = DistributedSampler(
        range(n),  # type: ignore[arg-type]
        num_replicas=world_size,
        rank=rank,
        shuffle=False,
        drop_last=False,
    )
    return [int(i) for k, i in enumerate(sampler) if rank + k * world_size < n]


def gather(part: Any) -> list[Any]:
    """Every rank's ``part``, in rank order, on every rank (``[part]`` without a group).

    ``torch.distributed.all_gather_object``: works on ``gloo`` and ``nccl``; ``part`` must
    pickle and should hold CPU tensors (a CUDA tensor comes back on the receiver's device).

    Example:
        >>> gather({"rows": 3})
        [{'rows': 3}]
    """
    if not is_distributed():
        return [part]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part)
    return parts


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    try:
        return int(text) if text.strip() else default
    except ValueError:
        raise InvalidInputError(
            f"{name}={text!r} in the environment is not a whole number"
        ) from None
