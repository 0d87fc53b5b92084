"""Feedback that changes the next decision: `FeedbackLoop`, shared by every entry point.

`RouterChatModel` (and through it `RouterMiddleware` and ``llmrouter serve``) keeps one loop:
it remembers each answered decision (in memory, and in the `FeedbackStore` when one is
configured), turns a rating of an answer into an `Interaction`, stores it, and folds it into a
personalised router's user state at once (`PersonalRouter.observe`, no retraining). With a
shared store, each process catches up on the other processes' ratings before it routes for
a user (`sync`), so several workers route a user alike.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.errors import InvalidOptionError
from langchain_llmrouter.personal.interactions import Interaction, question_id_of

if TYPE_CHECKING:
    from langchain_llmrouter.personal.feedback import FeedbackStore
    from langchain_llmrouter.routers.base import BaseRouter

REMEMBERED_DECISIONS = 10_000
"""Answered decisions kept in memory for feedback (the oldest are forgotten first)."""

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


class UnknownAnswerError(KeyError, InvalidOptionError):
    """Feedback named an answer this model did not give (or has forgotten)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown answer"


@dataclass(frozen=True)
class AnsweredDecision:
    """What feedback on an answer needs: who asked what, and which candidate answered."""

    decision_id: str
    query: str
    model: str
    router: str
    user_id: str | None


def decision_id_of(reference: Any) -> str:
    """The decision id behind a message, a run id, or a ``chatcmpl-...`` response id.

    Accepts an `AIMessage` (its ``response_metadata["routing"]["decision_id"]``, else its
    ``lc_run--<uuid>`` id), a `uuid.UUID`, or a string holding a UUID (with or without
    dashes, with any prefix such as ``chatcmpl-`` or ``lc_run--``).

    Raises:
        UnknownAnswerError: nothing that names an answer.
    """
    routing = getattr(reference, "response_metadata", {}).get("routing")
    if isinstance(routing, dict) and isinstance(routing.get("decision_id"), str):
        return routing["decision_id"]
    if hasattr(reference, "response_metadata"):
        reference = getattr(reference, "id", None)
    if isinstance(reference, uuid.UUID):
        return str(reference)
    if isinstance(reference, str):
        match = _UUID.search(reference)
        if match:
            return str(uuid.UUID(match.group(0)))
    raise UnknownAnswerError(
        f"cannot tell which answer {reference!r:.80} is: give the AIMessage, its run id, or "
        "the response id"
    )


def check_score(score: Any) -> float:
    """A feedback score: a finite number in [0, 1] (thumbs up 1, down 0)."""
    if isinstance(score, bool):
        return float(score)
    if not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
        raise InvalidOptionError(f"score: expected a number in [0, 1], got {score!r}")
    return float(score)


class FeedbackLoop:
    """Remember answered decisions; record ratings of them; keep users' states current."""

    def __init__(
        self,
        router: BaseRouter,
        store: FeedbackStore | None = None,
        *,
        remember: int = REMEMBERED_DECISIONS,
    ) -> None:
        self.router = router
        self.store = store
        self.remember = remember
        self._decisions: OrderedDict[str, AnsweredDecision] = OrderedDict()
        self._seen: dict[str, int] = {}
        # Ratings up to this store id are already in the router (`llmrouter train` folded them).
        self._trained_through = int(getattr(router, "feedback_through_", 0))
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()

    @property
    def personal(self) -> bool:
        """Whether the router learns from each user's ratings."""
        return bool(getattr(self.router, "personal", False))

    def answered(
        self, decision_id: str, *, query: str, model: str, user_id: str | None
    ) -> AnsweredDecision:
        """Remember an answered decision (and record it in the store, if any)."""
        record = AnsweredDecision(decision_id, query, model, self.router.name, user_id)
        with self._lock:
            self._decisions[decision_id] = record
            self._decisions.move_to_end(decision_id)
            while len(self._decisions) > self.remember:
                self._decisions.popitem(last=False)
        if self.store is not None:
            self.store.record_decision(
                decision_id, query=query, model=model, router=record.router, user_id=user_id
            )
        return record

    def decision(self, reference: Any) -> AnsweredDecision:
        """The answered decision ``reference`` names (see `decision_id_of`).

        Raises:
            UnknownAnswerError: not an answer this loop (or its store) knows.
        """
        decision_id = decision_id_of(reference)
        with self._lock:
            found = self._decisions.get(decision_id)
        if found is None and self.store is not None:
            stored = self.store.decision(decision_id)
            if stored is not None:
                found = AnsweredDecision(
                    decision_id, stored.query, stored.model, stored.router, stored.user_id
                )
        if found is None:
            raise UnknownAnswerError(
                f"no answer with id {decision_id}: it was not given by this model, or it was "
                f"forgotten (the last {self.remember} are kept in memory; configure a "
                "feedback_store to keep them all)"
            )
        return found

    def feedback(
        self,
        reference: Any,
        score: Any,
        *,
        user_id: str | None = None,
        default_user: str | None = None,
    ) -> Interaction:
        """Record a rating of an answer and fold it into the user's state now.

        Args:
            reference: The answer (see `decision_id_of`).
            score: In [0, 1]: 1 for thumbs up, 0 for down (the rating is 5 × score).
            user_id: Who rates (default: who asked, if the call said).
            default_user: Who rates when neither ``user_id`` nor the call says.

        Returns:
            The rated interaction.

        Raises:
            UnknownAnswerError: an unknown answer.
            InvalidOptionError: a score outside [0, 1], or no user.
        """
        value = check_score(score)
        found = self.decision(reference)
        user = user_id or found.user_id or default_user
        if not user:
            raise InvalidOptionError(
                "feedback needs a user: pass user_id=, or route the call with one"
            )
        interaction = Interaction(
            user_id=user,
            model=found.model,
            question_id=question_id_of(found.query),
            query=found.query,
            rating=5.0 * value,
        )
        if self.store is None:
            if self.personal and found.model in self.router.candidates_:
                self.router.observe(user, [interaction])  # type: ignore[attr-defined]
            return interaction
        # `answered` recorded the decision in the store already (the store is fixed for life).
        self.store.add_feedback(found.decision_id, value, user_id=user)
        self.sync(user)
        return interaction

    def sync(self, user_id: str | None) -> None:
        """Fold ratings of ``user_id`` stored since this process last looked (by any process)
        into the router's state for them (personalised routers with a store only)."""
        if user_id is None or self.store is None or not self.personal:
            return
        with self._sync_lock:  # one catch-up at a time, so no rating is folded in twice
            seen = self._seen.get(user_id, self._trained_through)
            if self.store.last_id(user_id) <= seen:
                return
            records = self.store.feedback_since(user_id, seen)
            fresh = [r.to_interaction() for r in records if r.model in self.router.candidates_]
            if fresh:
                self.router.observe(user_id, fresh)  # type: ignore[attr-defined]
            self._seen[user_id] = max((r.id for r in records), default=seen)

    def new_decision_id(self, run_id: Any = None) -> str:
        """The id of a new decision: the call's run id where there is one."""
        return str(run_id) if isinstance(run_id, uuid.UUID) else str(uuid.uuid4())
