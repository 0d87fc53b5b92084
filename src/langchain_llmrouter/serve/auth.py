"""Inbound authentication of ``llmrouter serve``: bearer keys and per-key spend limits.

Keys come from an environment variable (comma-separated) or a file (one a line); an entry
is ``KEY`` or ``KEY:DOLLARS``, the second giving that key a spend limit. Keys are compared in
constant time (`hmac.compare_digest`, against every key). What a key has spent is the sum of
its requests' ``actual_cost`` (the router's ``est_cost`` where a candidate reported no
usage), counted in the worker process that served them: with N workers a key may spend up to
N times its limit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from langchain_llmrouter.errors import ConfigError


class ServerAuth:
    """Which bearer keys may call the server, and what each has spent."""

    def __init__(self, keys: Mapping[str, float | None], *, enabled: bool = True) -> None:
        """Create the key store.

        Args:
            keys: Key → its spend limit in dollars (None: no limit).
            enabled: False serves everyone (local use only).
        """
        if enabled and not keys:
            raise ConfigError(
                "no server keys: set LLMROUTER_SERVER_KEYS (comma-separated) or auth.keys_file, "
                "or pass --no-auth to serve without authentication (local use only)"
            )
        self.enabled = enabled
        # Keys are held as their digests: equal length, so comparison time tells nothing.
        self._keys = [(_digest(k), limit) for k, limit in keys.items()]
        self._spent: dict[bytes, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def disabled(cls) -> ServerAuth:
        """No authentication (``--no-auth``): for a server only you can reach."""
        return cls({}, enabled=False)

    @classmethod
    def from_sources(
        cls,
        *,
        keys_env: str = "LLMROUTER_SERVER_KEYS",
        keys_file: str | Path | None = None,
        spend_limit: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServerAuth:
        """Keys from an environment variable and/or a file.

        Args:
            keys_env: Variable holding comma-separated entries.
            keys_file: File of entries, one a line (``#`` starts a comment).
            spend_limit: Dollars for keys whose entry gives no limit of its own.
            environ: The environment (default: ``os.environ``).
        """
        env = os.environ if environ is None else environ
        entries = [e for e in env.get(keys_env, "").split(",")]
        if keys_file is not None:
            path = Path(keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError(
                    "keys file not found", path=path, field="auth.keys_file"
                ) from None
            entries += [line.split("#", 1)[0] for line in text.splitlines()]
        keys: dict[str, float | None] = {}
        for entry in entries:
            key, limit = _parse_entry(entry.strip())
            if key:
                keys[key] = limit if limit is not None else spend_limit
        return cls(keys)

    def check(self, authorization: str | None) -> bytes | None:
        """The caller's key id, or None when the header holds no valid key.

        With authentication disabled, every caller is the same anonymous one.
        """
        if not self.enabled:
            return b""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = _digest(token.strip())
        found: bytes | None = None
        for known, _ in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(known, digest):
                found = known
        return found

    def limit(self, key_id: bytes) -> float | None:
        """The key's spend limit in dollars (None: none)."""
        for known, limit in self._keys:
            if known == key_id:
                return limit
        return None

    def spent(self, key_id: bytes) -> float:
        """Dollars the key has spent in this process."""
        with self._lock:
            return self._spent.get(key_id, 0.0)

    def over_limit(self, key_id: bytes) -> bool:
        """Whether the key has used up its spend limit."""
        limit = self.limit(key_id) if self.enabled else None
        return limit is not None and self.spent(key_id) >= limit

    def charge(self, key_id: bytes, dollars: float) -> None:
        """Add a request's dollars to the key's spend."""
        if dollars <= 0 or not self.enabled:
            return
        with self._lock:
            self._spent[key_id] = self._spent.get(key_id, 0.0) + dollars


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _parse_entry(entry: str) -> tuple[str, float | None]:
    """``KEY`` or ``KEY:DOLLARS`` (a key that itself holds a colon stays whole)."""
    key, sep, tail = entry.rpartition(":")
    if sep:
        try:
            limit = float(tail)
        except ValueError:
            return entry, None
        if limit <= 0:
            raise ConfigError(f"a key's spend limit must be > 0 dollars, got {tail!r}")
        return key, limit
    return entry, None
