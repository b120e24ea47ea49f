"""How several processes share the model: the Accelerate plugin of ``distributed.strategy``.

``ddp`` needs none (Accelerate wraps the model in DistributedDataParallel). ``fsdp`` is PyTorch's
FSDP2 (``fully_shard``) through Accelerate's plugin, one unit per decoder layer (the model class's
``_no_split_modules``). Checkpoints do not go through Accelerate: engine.checkpoint gathers full
state dicts with ``torch.distributed.checkpoint.state_dict``, the same for every strategy.
"""

from __future__ import annotations

import os

from engine.config import ConfigError, DistributedConfig


def world_size() -> int:
    """Processes of this run, as the launcher (torchrun, accelerate launch) announced them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_strategy(dist: DistributedConfig, processes: int, cuda: bool) -> None:
    """Refuse a strategy the machine cannot run (ConfigError naming the key)."""
    if dist.strategy == "fsdp" and processes > 1 and not cuda:
        raise ConfigError(
            "distributed.strategy fsdp needs CUDA GPUs: Accelerate runs CPU processes with "
            "DDP only; use distributed.strategy ddp (the default) on CPUs"
        )


def accelerator_plugins(dist: DistributedConfig, processes: int, cuda: bool) -> dict:
    """Keyword arguments for ``Accelerator(...)`` that select the strategy (none for ``ddp`` or one
    process)."""
    check_strategy(dist, processes, cuda)
    if dist.strategy != "fsdp" or processes == 1:
        return {}
    from accelerate.utils import FullyShardedDataParallelPlugin

    return {
        "fsdp_plugin": FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",  # the model's _no_split_modules: its decoder layer
            reshard_after_forward=dist.fsdp.reshard_after_forward,
            cpu_offload=dist.fsdp.cpu_offload,
            state_dict_type="SHARDED_STATE_DICT",  # unused: engine.checkpoint gathers full state dicts itself
            cpu_ram_efficient_loading=False,
        )
    }
