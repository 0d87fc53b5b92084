"""Test helpers: the router contract, and a deterministic in-process OpenAI-compatible server.

- `RouterContractTests`: the pytest base class every router's tests subclass (it imports
  pytest, so it loads only when used); `check_router` runs the same checks without pytest;
  `check_params_match_init` is one of them. They train on `make_contract_data()`, a small
  synthetic routing set embedded with `HashingEmbeddings` (no files, no model download), or on
  any `ContractData` you give.
- `FakeOpenAIServer`: a chat server that can inject provider faults (429, 500, 503, slow
  answers, connection resets mid-body or mid-stream) at a seeded rate; see `FaultInjection`.

The names are imported lazily, so ``import langchain_llmrouter.testing`` stays light and
``python -m langchain_llmrouter.testing.openai_server`` runs the module without a double import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.testing.contract_data import (
        ContractData,
        HashingEmbeddings,
        make_contract_data,
    )
    from langchain_llmrouter.testing.openai_server import (
        FAULT_KINDS,
        FakeOpenAIServer,
        FaultInjection,
        ModelBehavior,
        ServedCall,
    )
    from langchain_llmrouter.testing.router_checks import (
        check_params_match_init,
        check_router,
        fit_router,
    )
    from langchain_llmrouter.testing.router_contract import RouterContractTests

_MODULES = {
    "FAULT_KINDS": "openai_server",
    "FakeOpenAIServer": "openai_server",
    "FaultInjection": "openai_server",
    "ModelBehavior": "openai_server",
    "ServedCall": "openai_server",
    "ContractData": "contract_data",
    "HashingEmbeddings": "contract_data",
    "check_params_match_init": "router_checks",
    "check_router": "router_checks",
    "fit_router": "router_checks",
    "make_contract_data": "contract_data",
    "RouterContractTests": "router_contract",
}

__all__ = [
    "FAULT_KINDS",
    "ContractData",
    "FakeOpenAIServer",
    "FaultInjection",
    "HashingEmbeddings",
    "ModelBehavior",
    "RouterContractTests",
    "ServedCall",
    "check_params_match_init",
    "check_router",
    "fit_router",
    "make_contract_data",
]


def __getattr__(name: str) -> Any:
    """Import the exported names on first use."""
    if name in _MODULES:
        return getattr(import_module(f"langchain_llmrouter.testing.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
