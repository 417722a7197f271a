"""``flask tokenauth ...``: mint, inspect and revoke tokens, and make keys.

Registered on every app by ``init_app``; each command runs inside the app's
context, so it uses the app's own keys, settings and token store.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Optional

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import JWTError
from .serving import ProcessStore
from .state import app_state

cli = AppGroup("tokenauth", help="Mint, inspect and revoke JWTs; make signing keys.")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``"90"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"30d"`` as seconds."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not found:
        raise click.BadParameter("use a number with an optional unit: 90, 15m, 1h, 30d")
    return int(found.group(1)) * _UNITS[found.group(2) or "s"]


def parse_identity(text: str) -> Any:
    """An identity from the command line: a JSON number stays a number
    (``42`` is the int user id 42), anything else is a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _jwt() -> Any:
    return current_app.extensions["jwt"]


def _refuse(error: JWTError) -> None:
    click.echo("refused: %s: %s" % (error.error, error.description), err=True)
    sys.exit(1)


@cli.command("create-token")
@click.argument("identity")
@click.option("--permissions", default=None, help="Comma-separated permissions, e.g. read,predict.")
@click.option("--expires", default=None, help="Lifetime: 90, 15m, 1h, 30d (default: the app's).")
@click.option("--refresh", is_flag=True, help="Make a refresh token (a new session) instead.")
@click.option("--fresh", is_flag=True, help="Mark the access token fresh.")
@click.option(
    "--dpop-jkt", default=None, help="Bind the access token to a client key's RFC 7638 thumbprint (DPoP)."
)
def create_token(
    identity: str,
    permissions: Optional[str],
    expires: Optional[str],
    refresh: bool,
    fresh: bool,
    dpop_jkt: Optional[str],
) -> None:
    """Print a signed token for IDENTITY."""
    if refresh and dpop_jkt:
        raise click.UsageError("--dpop-jkt binds an access token: not with --refresh")
    granted = [p for p in permissions.split(",") if p] if permissions is not None else None
    lifetime = parse_duration(expires) if expires is not None else None
    jwt = _jwt()
    if refresh:
        token = jwt.create_refresh_token(
            parse_identity(identity), expires_delta=lifetime, permissions=granted
        )
    else:
        token = jwt.create_access_token(
            parse_identity(identity),
            expires_delta=lifetime,
            permissions=granted,
            fresh=fresh,
            dpop_jkt=dpop_jkt,
        )
    click.echo(token)


@cli.command("decode")
@click.argument("token")
def decode(token: str) -> None:
    """Verify TOKEN and print its claims, or say why it is refused."""
    try:
        claims = _jwt().decode_token(token)
    except JWTError as error:
        _refuse(error)
        return
    click.echo(json.dumps(claims, indent=2, sort_keys=True))


@cli.command("revoke")
@click.argument("token", required=False)
@click.option("--identity", default=None, help="Revoke every token of this identity issued until now.")
def revoke(token: Optional[str], identity: Optional[str]) -> None:
    """Revoke TOKEN (and its session), or all tokens of --identity."""
    if (token is None) == (identity is None):
        raise click.UsageError("give either a TOKEN or --identity, not both")
    jwt = _jwt()
    store = app_state().store()
    if isinstance(store, ProcessStore) and store.shared is None:
        click.echo(
            "warning: the token store is this process's memory (memory://), which a running "
            "server does not share: it will not see this revocation (set JWT_TOKEN_STORE to "
            "sqlite:///tokenauth.sqlite3 for one host, or redis:// for several)",
            err=True,
        )
    try:
        if identity is not None:
            jwt.revoke_identity(parse_identity(identity))
            click.echo("revoked every token of identity %s issued until now" % identity)
        else:
            jwt.revoke(token)
            click.echo("revoked the token and its session")
    except JWTError as error:
        _refuse(error)


@cli.command("keygen")
@click.option("--alg", "algorithm", default="ES256", show_default=True, help="Signing algorithm.")
@click.option("--json", "as_json", is_flag=True, help="Print a JWT_KEYS entry as JSON instead of PEM.")
def keygen(algorithm: str, as_json: bool) -> None:
    """Print a new key pair (or HMAC secret) with a fresh kid, for JWT_KEYS."""
    from .errors import ConfigurationError
    from .keys import generate

    try:
        kid, private, public = generate(algorithm)
    except ConfigurationError as error:
        raise click.BadParameter(str(error), param_hint="--alg") from None
    if as_json:
        entry = {"kid": kid, "alg": algorithm}
        if public is None:
            entry["secret"] = private
        else:
            entry.update(private_key=private, public_key=public)
        click.echo(json.dumps(entry, indent=2))
        return
    click.echo("# kid: %s  alg: %s  (first in JWT_KEYS = the current key)" % (kid, algorithm))
    click.echo(private.rstrip())
    if public is not None:
        click.echo(public.rstrip())
