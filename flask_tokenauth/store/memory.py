"""The embedded store: in-process, thread-safe, one process only."""

from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Tuple

from . import Status, TokenRef, TokenStore, required

_SWEEP_EVERY = 1024  # writes between sweeps of expired entries


class MemoryStore(TokenStore):
    """Entries in dicts with deadlines; expired ones are swept as writes come in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: Dict[str, float] = {}
        self._families: Dict[str, float] = {}
        self._identities: Dict[str, Tuple[float, float]] = {}  # identity -> (cutoff, deadline)
        self._rotations: Dict[str, Tuple[str, str, float]] = {}  # family -> (jti, record, deadline)
        self._seen: Dict[str, float] = {}  # name -> deadline (DPoP proof ids)
        self._writes = 0

    def lookup(self, ref: TokenRef) -> Status:
        now = time.time()
        jti, family, identity = ref
        token_dead = jti is not None and self._tokens.get(jti, 0.0) > now
        family_dead = family is not None and self._families.get(family, 0.0) > now
        cutoff = None
        if identity is not None:
            entry = self._identities.get(identity)
            if entry is not None and entry[1] > now:
                cutoff = entry[0]
        return Status(token_dead, family_dead, cutoff)

    def revoke_token(self, ref: TokenRef, ttl: float) -> None:
        jti = required(ref.jti, "jti")
        with self._lock:
            self._tokens[jti] = time.time() + ttl
            self._wrote()

    def revoke_family(self, ref: TokenRef, ttl: float) -> None:
        family = required(ref.family, "family")
        with self._lock:
            deadline = time.time() + ttl
            self._families[family] = max(deadline, self._families.get(family, 0.0))
            self._wrote()

    def revoke_identity(self, ref: TokenRef, cutoff: float, ttl: float) -> None:
        identity = required(ref.identity, "identity")
        with self._lock:
            old = self._identities.get(identity)
            deadline = time.time() + ttl
            if old is not None:
                cutoff, deadline = max(cutoff, old[0]), max(deadline, old[1])
            self._identities[identity] = (cutoff, deadline)
            self._wrote()

    def rotate(
        self, ref: TokenRef, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        family = required(ref.family, "family")
        with self._lock:
            now = time.time()
            found = self._rotations.get(family)
            if found is not None and found[2] > now and found[0] not in (presented, successor):
                return found[1]
            self._rotations[family] = (successor, record, now + ttl)
            self._wrote()
            return None

    def first_use(self, name: str, ttl: float) -> bool:
        with self._lock:
            now = time.time()
            if self._seen.get(name, 0.0) > now:
                return False
            self._seen[name] = now + ttl
            self._wrote()
            return True

    def __len__(self) -> int:
        """Live entries (expired ones not yet swept included)."""
        return len(self._tokens) + len(self._families) + len(self._identities) + len(self._rotations)

    def sweep(self) -> None:
        """Drop every expired entry now."""
        with self._lock:
            self._sweep(time.time())

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(time.time())

    def _sweep(self, now: float) -> None:
        for table in (self._tokens, self._families, self._seen):
            for key in [k for k, deadline in table.items() if deadline <= now]:
                del table[key]
        for key in [k for k, value in self._identities.items() if value[1] <= now]:
            del self._identities[key]
        for key in [k for k, value in self._rotations.items() if value[2] <= now]:
            del self._rotations[key]
