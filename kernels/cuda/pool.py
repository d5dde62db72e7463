"""A caching device allocator: freed blocks go back to a pool keyed by size, not to cudaFree.

A training step allocates the same set of activation and gradient shapes every step; Numba's
default manager pays ``cuMemAlloc`` for each and frees them in batches. Like PyTorch's
caching allocator, this keeps freed blocks and hands them out again. Reuse is safe in
stream order: graphnet launches every kernel on the default stream, so a block's next user
runs after its last one. ``GRAPHNET_CUDA_POOL=0`` turns the pool off.
"""

from __future__ import annotations

import os
import weakref
from collections import defaultdict

_GRANULE = 512  # bytes; sizes are rounded up so that near-equal shapes share blocks


def install() -> bool:
    """Make the pool Numba's memory manager; call before the first CUDA context exists.

    Returns whether it was installed (never under the simulator, or when turned off).
    """
    if os.environ.get("GRAPHNET_CUDA_POOL", "1") == "0":
        return False
    try:
        from numba.cuda.cudadrv import driver as drv
    except ImportError:  # pragma: no cover - numba-cuda without the driver module
        return False
    if getattr(drv, "_memory_manager", None) not in (None, drv.NumbaCUDAMemoryManager):
        return False  # the user chose a manager (RMM, say): leave it

    class PoolMemoryManager(drv.NumbaCUDAMemoryManager):
        """Numba's manager with a free list per rounded size in front of cuMemAlloc."""

        def initialize(self) -> None:
            super().initialize()
            self._pool: dict[int, list] = defaultdict(list)

        def memalloc(self, size: int):
            size = max(_GRANULE, -(-size // _GRANULE) * _GRANULE)
            free = self._pool[size]
            if free:
                ptr = free.pop()
            else:
                ptr = self._attempt_allocation(lambda: drv.driver.cuMemAlloc(size))
                if ptr is None:  # pragma: no cover - out of memory even after a flush
                    raise MemoryError(f"cannot allocate {size} bytes on the GPU")
            pool, live, key = free, self.allocations, int(ptr)

            def give_back() -> None:  # the last view died: the block waits for its next user
                live.pop(key, None)
                pool.append(ptr)

            mem = drv.AutoFreePointer(weakref.proxy(self.context), ptr, size,
                                      finalizer=give_back)
            live[key] = mem  # as Numba's manager does: the pointer lives until freed
            return mem.own()

        def _attempt_allocation(self, allocator):
            try:
                return allocator()
            except drv.CudaAPIError:
                self.release_pool()  # cached blocks first, then numba's own flush and retry
                return super()._attempt_allocation(allocator)

        def release_pool(self) -> None:
            for blocks in self._pool.values():
                for ptr in blocks:
                    drv.driver.cuMemFree(ptr)
                blocks.clear()

        def reset(self) -> None:
            self.release_pool()
            super().reset()

    drv.set_memory_manager(PoolMemoryManager)
    return True
