"""A secret key kept in the app's instance folder, the same for every process of one host.

A key made per process (``secrets.token_urlsafe()`` at import) breaks as soon
as a server runs several: a token signed by one worker is refused by the
others ("Signature verification failed"). :func:`instance_secret` makes the
key once, in a file of the instance folder that only its owner can read,
and every later process of the host reads it back.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat

from flask import Flask

from .errors import ConfigurationError

logger = logging.getLogger("flask_tokenauth")

#: The file's name in the instance folder unless the caller names another.
SECRET_FILE = "tokenauth-secret.key"
_MINIMUM_CHARS = 32  # HS256 needs 32 bytes (RFC 7518 section 3.2)


def instance_secret(app: Flask, filename: str = SECRET_FILE) -> str:
    """The app's secret key from ``<instance folder>/<filename>``, made there
    by the first process that asks (64 random URL-safe characters).

    ``app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or
    instance_secret(app)`` gives every worker of one host the same key, and
    keeps it across restarts. The file is written aside and linked into place,
    so that a process starting at the same moment never reads half a key.
    Several hosts need the same key on each: set ``SECRET_KEY`` from the
    environment there. Raises :class:`~flask_tokenauth.ConfigurationError`
    when the folder cannot hold it or the file holds no usable key.
    """
    folder = app.instance_path
    path = os.path.join(folder, filename)
    made = False
    try:
        key = _read(path)
    except FileNotFoundError:
        made = _make(folder, path)
        key = _read(path)
    except OSError as exc:
        raise ConfigurationError("the secret key file %s cannot be read: %s" % (path, exc.strerror)) from exc
    if made:
        logger.warning(
            "made a secret key for this app in %s: every process of this host signs with it. "
            "For several hosts, set SECRET_KEY from the environment, the same on each",
            path,
        )
    else:
        logger.info("secret key read from %s", path)
    return key


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="strict") as found:
        mode = os.fstat(found.fileno()).st_mode
        key = found.read().strip()
    if len(key) < _MINIMUM_CHARS:
        raise ConfigurationError(
            "the secret key file %s holds %d characters; delete it to have a new key made, or put "
            "at least %d random characters in it" % (path, len(key), _MINIMUM_CHARS)
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the secret key file %s can be read by other users: chmod 600 it", path)
    return key


def _make(folder: str, path: str) -> bool:
    """Write a new key to ``path`` unless another process did first; ``True`` if this one did."""
    try:
        os.makedirs(folder, exist_ok=True)
        aside = "%s.%d.%s.tmp" % (path, os.getpid(), secrets.token_hex(4))
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(aside, path)  # fails when another process linked its key first
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(aside)
    except OSError as exc:
        raise ConfigurationError(
            "cannot make a secret key file in %s (%s): set SECRET_KEY from the environment instead"
            % (folder, exc.strerror)
        ) from exc
