"""The router contract for the foundation's kNN router (family tests: tests/unit/test_routers.py)."""

from __future__ import annotations

from router_contract import RouterContract


class TestKNNRouterContract(RouterContract):
    router_name = "knnrouter"
    fast_params = {"k": 20}
    bad_params = [({"k": 0}, "hparam.k"), ({"metric": "manhattan"}, "hparam.metric")]
