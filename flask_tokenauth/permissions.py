"""What a caller may do: permission claims in tokens, and the 403 check.

A token's permissions are a list of strings in ``JWT_PERMISSIONS_CLAIM``
(default ``"permissions"``); when that claim is configured as ``"scope"``, an
OAuth-style space-separated string is accepted too. A valid token that lacks
a required permission is a 403 with ``error="insufficient_scope"``; a missing
or invalid token stays a 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, FrozenSet, Iterable, List, Optional

from .config import config
from .errors import JWTError

_MISSING = object()


def permissions_in(claims: Mapping[str, Any]) -> FrozenSet[str]:
    """The permissions a verified token grants (malformed claims grant none)."""
    name = config.permissions_claim
    value = claims.get(name)
    if isinstance(value, str):
        return frozenset(value.split()) if name == "scope" else frozenset()
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return frozenset()


def as_claim(permissions: Iterable[str]) -> Any:
    """Permissions as they are written into a token."""
    values = sorted({str(p) for p in permissions})
    return " ".join(values) if config.permissions_claim == "scope" else values


def of_identity(identity: Any, handler: Any) -> Optional[List[str]]:
    """The permissions of a logged-in identity: from ``@jwt.permissions_handler``,
    else its ``permissions`` attribute or key; ``None`` when it has none."""
    if handler is not None:
        found = handler(identity)
    elif isinstance(identity, Mapping):
        found = identity.get("permissions")
    else:
        found = getattr(identity, "permissions", None)
    if found is None:
        return None
    if isinstance(found, str):
        found = found.split()
    return [str(p) for p in found]


def require(claims: Dict[str, Any], needed: Iterable[str], realm: str) -> None:
    """Raise 403 unless ``claims`` grant every permission in ``needed``."""
    needed = [needed] if isinstance(needed, str) else list(needed)
    missing = [p for p in needed if p not in permissions_in(claims)]
    if not missing:
        return
    scope = " ".join(needed)
    raise JWTError(
        "Forbidden",
        "Missing permission%s: %s" % ("" if len(missing) == 1 else "s", ", ".join(missing)),
        403,
        {
            "WWW-Authenticate": '%s realm="%s", error="insufficient_scope", scope="%s"'
            % (config.header_prefix, realm, scope.replace('"', "'"))
        },
    )
