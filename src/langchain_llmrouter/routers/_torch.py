"""Small helpers shared by the routers that train PyTorch models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_llmrouter.errors import RouterLoadError


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


def check_config_fits_weights(config: Any, weights: dict[str, Any]) -> None:
    """Refuse a saved ``model_config`` whose sizes differ from the saved weights' shapes.

    The model is first built on torch's ``meta`` device (shapes only, no memory), so a config
    declaring, say, a huge ``vocab_size`` is refused before anything that size is allocated.

    Raises:
        RouterLoadError: naming the config field or the weight and the shapes.
    """
    import torch
    from transformers import AutoModelForCausalLM

    for field in ("num_hidden_layers", "n_layer", "num_layers"):
        layers = getattr(config, field, None)
        if isinstance(layers, int) and layers > len(weights):
            raise RouterLoadError(
                f"state.model_config.{field} is {layers}, but only {len(weights)} weights "
                "were saved"
            )
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    for key in sorted(expected.keys() | weights.keys()):
        got = tuple(weights[key].shape) if key in weights else None
        if got != expected.get(key):
            raise RouterLoadError(
                f"array 'lm.{key}': shape {got} where state.model_config builds "
                f"{expected.get(key)} (is vocab_size or another size in the config changed?)"
            )
