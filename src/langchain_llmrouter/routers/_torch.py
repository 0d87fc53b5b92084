"""Small helpers shared by the routers that train PyTorch models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, then restore the previous setting.

    The routers' networks are tiny: their small matrix products gain little from more
    threads, and on a machine whose cores are shared the extra threads spin (a fit
    measured 8-20x slower with 2 threads than with 1 on a busy 2-core machine). One
    thread also makes float reductions, and so the trained router, the same on every
    machine. ``None`` leaves the setting alone.
    """
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
