"""`VLLMChatModel`: an in-process ``vllm.LLM`` as a LangChain chat model, for offline use.

The usual way to run a Router-R1 policy is a vLLM server (``vllm serve <checkpoint>``)
reached through ``ChatOpenAI``. This adapter serves the same model inside the Python process
instead (no server, no network), for batch jobs and machines without a serving stack::

    from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
    from langchain_llmrouter.graphs.vllm_policy import VLLMChatModel

    policy = VLLMChatModel(
        model="ulab-ai/Router-R1-Qwen2.5-3B-Instruct",  # or a local directory
        llm_kwargs={"dtype": "float16", "tensor_parallel_size": 1},
    )
    graph = build_router_r1_graph(policy=policy, candidates=pool)

The engine is created on the first call (constructing the chat model costs nothing), and needs
the ``vllm`` extra (``pip install 'langchain-llmrouter[vllm]'``) and, in practice, a GPU.

The prompt is built with the tokenizer's chat template: a generation prompt is added after the
messages, unless the last message is an ``AIMessage``, which is then *continued* (vLLM's
``continue_final_message``). That is how the Router-R1 graph's ``continue_final_message=True``
mode reproduces the published raw-prompt loop. A tokenizer without a chat template gets the
message texts joined by newlines.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_llmrouter._optional import import_optional

__all__ = ["VLLMChatModel"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class VLLMChatModel(BaseChatModel):
    """A chat model served by an in-process ``vllm.LLM`` engine (offline inference).

    vLLM's offline engine is synchronous and not meant to be driven from several threads at
    once: calls are serialised with a lock, and the async methods run the sync call in a
    worker thread.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str
    """A local model directory or a model id (as ``vllm.LLM(model=...)`` takes it)."""
    llm_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra ``vllm.LLM`` arguments: ``dtype``, ``tensor_parallel_size``, ``max_model_len`` ..."""
    temperature: float = Field(default=1.0, ge=0)
    """Sampling temperature (Router-R1's published value is 1.0)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    max_tokens: int = Field(default=1024, ge=1)
    """Most tokens generated per call."""
    seed: int | None = None
    """Per-request sampling seed, for reproducible samples."""

    _engine: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "vllm-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "vllm"
        params["ls_model_name"] = self.model
        params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        return params

    @staticmethod
    def _vllm() -> Any:
        return import_optional("vllm", extra="vllm", feature="VLLMChatModel (in-process vLLM)")

    def engine(self) -> Any:
        """The ``vllm.LLM`` engine, created (once) on first use."""
        if self._engine is None:
            vllm = self._vllm()
            with self._lock:
                if self._engine is None:
                    self._engine = vllm.LLM(model=self.model, **self.llm_kwargs)
        return self._engine

    def build_prompt(self, tokenizer: Any, messages: list[BaseMessage]) -> str:
        """The prompt text: the chat template over the messages, continuing a final AIMessage."""
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        if not getattr(tokenizer, "chat_template", None):
            return "\n".join(m["content"] for m in chat)
        continue_final = bool(messages) and isinstance(messages[-1], AIMessage)
        return str(
            tokenizer.apply_chat_template(
                chat,
                tokenize=False,
                add_generation_prompt=not continue_final,
                continue_final_message=continue_final,
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        vllm = self._vllm()
        engine = self.engine()
        tokenizer = engine.get_tokenizer()
        prompt = self.build_prompt(tokenizer, messages)
        # The template already holds any BOS token, so tokenise without special tokens.
        prompt_ids = list(tokenizer.encode(prompt, add_special_tokens=False))
        params = vllm.SamplingParams(
            n=1,
            temperature=kwargs.get("temperature", self.temperature),
            top_p=kwargs.get("top_p", self.top_p),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            stop=list(stop or []),
            seed=kwargs.get("seed", self.seed),
        )
        with self._lock:
            outputs = engine.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)
        result = outputs[0]
        completion = result.outputs[0]
        input_tokens = len(result.prompt_token_ids or prompt_ids)
        output_tokens = len(completion.token_ids)
        message = AIMessage(
            content=completion.text,
            response_metadata={
                "model_name": self.model,
                "finish_reason": completion.finish_reason,
                "stop_reason": completion.stop_reason,
            },
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Run the (synchronous) offline engine in a worker thread."""
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)
