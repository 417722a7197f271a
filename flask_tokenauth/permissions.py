"""What a caller may do: permission claims in tokens, and the 403 check.

``JWT_PERMISSIONS_CLAIM`` (default ``"permissions"``) names where a token's
permissions are: a claim, a dotted path into nested claims
(``"realm_access.roles"``, Keycloak's), or a list of them, all counted. A
claim holds a list of strings (Auth0's ``permissions``, Okta's ``scp``) or,
for ``scope`` and ``scp``, a space-separated string (OAuth's ``scope``,
Entra's ``scp``). Malformed values grant nothing. A valid token that lacks a
required permission is a 403 with ``error="insufficient_scope"``; a missing
or invalid token stays a 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, FrozenSet, Iterable, List, Optional

from .config import config
from .errors import JWTError

_MISSING = object()


#: Claims whose permissions may be one space-separated string.
SPACE_SEPARATED = ("scope", "scp")


def _paths() -> List[str]:
    spec = config.get("JWT_PERMISSIONS_CLAIM")
    if isinstance(spec, str):
        return [spec]
    return [path for path in spec or () if isinstance(path, str)]


def _at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at ``path``: a claim of that very name (Auth0's namespaced
    claims are URLs, dots and all), else a walk down dotted segments."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
    return value


def permissions_in(claims: Mapping[str, Any]) -> FrozenSet[str]:
    """The permissions a verified token grants (malformed claims grant none)."""
    found: set = set()
    for path in _paths():
        value = _at(claims, path)
        if isinstance(value, str):
            if path.rsplit(".", 1)[-1] in SPACE_SEPARATED:
                found.update(value.split())
        elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            found.update(value)
    return frozenset(found)


def put(payload: Dict[str, Any], permissions: Iterable[str], *, replace: bool = True) -> None:
    """Write permissions into a new token's claims, where the first
    ``JWT_PERMISSIONS_CLAIM`` path says (a dotted path nests)."""
    path = _paths()[0]
    values = sorted({str(p) for p in permissions})
    value: Any = " ".join(values) if path.rsplit(".", 1)[-1] in SPACE_SEPARATED else values
    *parents, last = path.split(".")
    target = payload
    for part in parents:
        target = target.setdefault(part, {})
    if replace or last not in target:
        target[last] = value


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
