"""Routing data: the `RoutingDataset` matrices and the readers of its file formats.

`langchain_llmrouter.data.dataset` holds `RoutingDataset` (queries × candidates matrices of
quality and cost, costs from the candidates' prices, split and subset views);
`langchain_llmrouter.data.readers` reads LLMRouter routing JSONL, RouterDC-style JSON and
wide CSV files into (query, model) observations. The public names of the former
``langchain_llmrouter/data.py`` module are re-exported here.
"""

from langchain_llmrouter.data.dataset import RoutingDataset
from langchain_llmrouter.data.readers import VERIFICATION_FIELD, DataFormat, Row, read_rows

__all__ = ["VERIFICATION_FIELD", "DataFormat", "RoutingDataset", "Row", "read_rows"]
