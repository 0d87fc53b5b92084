"""The chat demo: a Streamlit page that answers through `RouterChatModel` and shows, for each
message, which candidate answered, why, and what it cost next to always using the largest one.
Each message is asked as the user picked in the sidebar; thumbs under an answer rate it, which
a personalised router uses for that user's next choice at once.

Start it with ``llmrouter chat --router knnrouter --config configs/infer/knnrouter.yaml``, or
``streamlit run src/langchain_llmrouter/demo/app.py -- --router knnrouter --config ...``
(the ``demo`` extra installs Streamlit).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage

from langchain_llmrouter._optional import import_optional
from langchain_llmrouter.chat_model import RouterChatModel, routing_text
from langchain_llmrouter.demo.session import (
    DEFAULT_USER,
    MODES,
    NO_KEYS_HELP,
    ChatSettings,
    DemoSetup,
    Mode,
    Turn,
    build_router,
    largest_cost_of,
    load_setup,
    parse_settings,
    rate,
    totals,
    user_choices,
)
from langchain_llmrouter.demo.session import readable as _readable
from langchain_llmrouter.routers.base import BaseRouter

st = import_optional("streamlit", extra="demo", feature="the chat demo")

MODE_HELP = {
    "current_only": "route on the last message",
    "full_context": "route on the whole conversation",
    "retrieval": "route on the last message plus the most similar earlier ones",
}


@st.cache_resource(show_spinner="Loading the config and candidates...")
def _setup(settings: ChatSettings, stamp: float) -> DemoSetup:
    return load_setup(settings)


@st.cache_resource(show_spinner="Loading the router...")
def _router(label: str, directory: str | None, _setup: DemoSetup, stamp: float) -> Any:
    return build_router(label, Path(directory) if directory else None, _setup)


def _mtime(path: Path | None) -> float:
    """Reload a cached resource when its file changes."""
    target = path / "router.json" if path is not None and path.is_dir() else path
    try:
        return target.stat().st_mtime if target is not None else 0.0
    except OSError:
        return 0.0


def _sidebar(setup: DemoSetup, settings: ChatSettings) -> tuple[str, float, Mode, int]:
    with st.sidebar:
        st.header("Router")
        labels = list(setup.routers)
        label = st.selectbox(
            "Router",
            labels,
            index=labels.index(setup.default_router),
            key="router",
            help="trained routers found in the model directory, and the baselines",
        )
        cost_weight = st.slider(
            "cost_weight",
            0.0,
            10.0,
            settings.cost_weight,
            0.1,
            key="cost_weight",
            help="quality given up per dollar per 1,000 queries: higher picks cheaper models",
        )
        mode = st.radio(
            "Query mode",
            MODES,
            index=MODES.index(settings.mode),
            key="mode",
            format_func=lambda m: f"{m}: {MODE_HELP[m]}",
        )
        top_k = int(st.number_input("top-k (retrieval)", 1, 20, settings.top_k, key="top_k"))
        st.header("Candidates")
        st.dataframe(
            [
                {
                    "candidate": c.name,
                    "size": c.size or "",
                    "$/M in": c.input_price,
                    "$/M out": c.output_price,
                    "callable": "yes" if setup.callable[c.name] else "no",
                }
                for c in setup.pool
            ],
            hide_index=True,
        )
        st.caption(f"Cost reference: always **{setup.largest}**, the largest candidate.")
    return label, cost_weight, cast(Mode, mode), top_k


def _user(router: BaseRouter) -> str:
    """Who asks: the sidebar's pick (a personalised router's known users, or any name)."""
    st.header("User")
    choice = st.selectbox(
        "Ask as",
        user_choices(router, st.session_state.get("user")),
        key="user",
        accept_new_options=True,
        help="a personalised router routes each user by their own ratings; type a new name "
        "to start a user from the population's preferences",
    )
    return str(choice or DEFAULT_USER).strip() or DEFAULT_USER


def _llm(
    label: str, router: BaseRouter, setup: DemoSetup, settings: ChatSettings
) -> RouterChatModel:
    """This session's chat model for the router: it remembers the answers it gave, so that
    their ratings reach the router (options that change between messages go per call)."""
    llms: dict[str, RouterChatModel] = st.session_state.setdefault("llms", {})
    if label not in llms or llms[label].router is not router:
        llms[label] = RouterChatModel(
            router=router,
            candidates=setup.pool,
            max_tokens=setup.config.max_tokens,
            temperature=setup.config.temperature,
            feedback_store=settings.feedback_store,
        )
    return llms[label]


def _history_messages(turns: list[Turn]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for turn in turns:
        messages.append(HumanMessage(turn.question))
        if turn.answer is not None:
            messages.append(AIMessage(turn.answer))
    return messages


def _show_details(turn: Turn) -> None:
    decision = turn.decision
    chosen = turn.answered_by or decision.model
    actual = "not called" if turn.actual_cost is None else f"${turn.actual_cost:.6f}"
    latency = "" if turn.latency_s is None else f" · latency {turn.latency_s:.2f} s"
    personalised = turn.routing.get("personalised", decision.personalised)
    whose = "personalised: their ratings shaped it" if personalised else "not personalised"
    st.caption(
        f"Routed to **{chosen}** by {turn.router} (cost_weight {turn.cost_weight:g}) for "
        f"**{turn.user_id}** ({whose}) · estimated ${decision.est_cost:.6f} · "
        f"actual {actual}{latency} · largest would cost ${turn.largest_cost:.6f}"
    )
    chart, _ = st.columns([3, 2])  # a small chart: the scores at a glance
    chart.bar_chart(
        {"predicted quality": decision.scores},
        horizontal=True,
        height=30 + 15 * len(decision.scores),
    )
    with st.expander("Why this candidate"):
        st.write(decision.reason)
        st.code(turn.routing_text, language=None)


def _answer(
    llm: RouterChatModel, messages: list[BaseMessage], turn: Turn, options: dict[str, Any]
) -> None:
    """Stream the answer into the page, recording model, cost, tokens and latency."""
    started = time.perf_counter()
    total: AIMessageChunk | None = None
    routing: dict[str, Any] = {}

    def text() -> Iterator[str]:
        nonlocal total
        for chunk in llm.stream(messages, **options):
            assert isinstance(chunk, AIMessageChunk)
            total = chunk if total is None else total + chunk
            routing.update(chunk.response_metadata.get("routing") or {})
            if chunk.text:
                yield chunk.text

    try:
        turn.answer = str(st.write_stream(text()) or "")
    except Exception as exc:  # every candidate tried failed: show it, keep the page
        turn.error = _readable(exc)
        st.error(turn.error)
        return
    turn.latency_s = time.perf_counter() - started
    turn.routing = routing  # its decision_id can be rated now the stream is complete
    turn.answered_by = routing.get("model", turn.decision.model)
    turn.actual_cost = routing.get("actual_cost")
    usage = total.usage_metadata if total is not None else None
    if usage:
        turn.input_tokens = int(usage.get("input_tokens", 0))
        turn.output_tokens = int(usage.get("output_tokens", 0))


def _thumbs(turn: Turn, llms: dict[str, RouterChatModel]) -> None:
    """Thumbs under an answer: the first click rates it for the user who asked (once; the
    thumbs then stay as given), and what the rating did shows under them."""
    if turn.decision_id is None:
        return
    value = st.feedback(
        "thumbs",
        key=f"thumbs-{turn.decision_id}",
        default=None if turn.rating is None else int(turn.rating),
        disabled=turn.rating is not None,
    )
    if value is not None and turn.rating is None:
        llm = llms.get(turn.router)
        if llm is None:
            turn.rating, turn.rating_error = float(value), "The answer's chat model is gone."
        else:
            rate(llm, turn, float(value))
    if turn.rating_error:
        st.error(turn.rating_error)
    elif turn.rating_note:
        st.caption(turn.rating_note)


def _totals(setup: DemoSetup, turns: list[Turn]) -> None:
    spent, largest = totals(turns)
    saved = 1.0 - spent / largest if largest > 0 else 0.0
    left, middle, right = st.columns(3)
    left.metric("Spent (routed)", f"${spent:.6f}")
    middle.metric(f"Always {setup.largest}", f"${largest:.6f}")
    right.metric("Saved", f"{saved:.0%}")
    if turns and any(t.actual_cost is None for t in turns):
        st.caption("Turns that were not called count at the router's estimates.")


def main(argv: list[str] | None = None) -> None:
    """Draw the page (Streamlit reruns this on every interaction)."""
    st.set_page_config(page_title="langchain-llmrouter chat", layout="wide")
    st.title("Routed chat")
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
        setup = _setup(settings, _mtime(settings.config))
    except Exception as exc:
        st.error(f"Cannot start the demo: {_readable(exc)}")
        st.stop()
    user_slot = st.sidebar.container()  # the user picker, drawn once the router is loaded
    label, cost_weight, mode, top_k = _sidebar(setup, settings)
    directory = setup.routers[label]
    try:
        router = _router(label, str(directory) if directory else None, setup, _mtime(directory))
    except Exception as exc:
        st.error(f"Cannot load router {label!r}: {_readable(exc)}")
        st.stop()
    with user_slot:
        user = _user(router)
    try:
        llm = _llm(label, router, setup, settings)
    except Exception as exc:
        st.error(f"Cannot chat through router {label!r}: {_readable(exc)}")
        st.stop()
    if not setup.any_callable:
        st.warning(NO_KEYS_HELP)

    llms: dict[str, RouterChatModel] = st.session_state["llms"]
    turns: list[Turn] = st.session_state.setdefault("turns", [])
    for turn in turns:
        with st.chat_message("user"):
            st.markdown(turn.question)
        with st.chat_message("assistant"):
            if turn.answer is not None:
                st.markdown(turn.answer)
            elif turn.error:
                st.error(turn.error)
            _show_details(turn)
            _thumbs(turn, llms)

    question = st.chat_input("Ask anything")
    if question:
        messages = [*_history_messages(turns), HumanMessage(question)]
        options: dict[str, Any] = {
            "routing_mode": mode,
            "retrieval_top_k": top_k,
            "cost_weight": cost_weight,
            "user_id": user,
        }
        with st.chat_message("user"):
            st.markdown(question)
        with st.chat_message("assistant"):
            decision = llm.decide(messages, **options)
            text = routing_text(messages, mode, top_k=top_k, embeddings=router.embeddings)
            turn = Turn(
                question, text, decision, router=label, cost_weight=cost_weight, user_id=user
            )
            if setup.callable.get(decision.model):
                _answer(llm, messages, turn, options)
            else:
                st.info(f"Would ask **{decision.model}**; no candidate can be called.")
            turn.largest_cost = largest_cost_of(turn, setup.pool, setup.largest)
            _show_details(turn)
            _thumbs(turn, llms)
        turns.append(turn)
    _totals(setup, turns)


if __name__ == "__main__":
    main()
