"""flask_tokenauth: JWT authentication for Flask APIs, a drop-in successor of Flask-JWT.

``from flask_tokenauth import JWT, jwt_required, current_identity`` is all a
Flask-JWT app needs to change.
"""

from .codec import InvalidTokenError
from .config import DEFAULTS as CONFIG_DEFAULTS
from .errors import ConfigurationError, JWTError, StoreUnavailable
from .extension import JWT
from .instance import instance_secret
from .issuing import TokenStr
from .verifying import current_identity, current_token, jwt_required, verify_jwt_in_request

__version__ = "0.2.0"

__all__ = [
    "CONFIG_DEFAULTS",
    "ConfigurationError",
    "InvalidTokenError",
    "JWT",
    "JWTError",
    "StoreUnavailable",
    "TokenStr",
    "current_identity",
    "current_token",
    "instance_secret",
    "jwt_required",
    "verify_jwt_in_request",
]
