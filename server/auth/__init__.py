"""Authentication and authorisation: passwords (HTTP Basic credentials, scrypt), tokens
(``X-BoB-AuthToken``, ES256 JWT), the middleware that checks token, rate limit and roles, and
the ``/auth/{entityId}`` endpoint that trades the one for the other."""
from ..endpoint import BASIC, CREDENTIAL_ROLES, PUBLIC, ROLES, SUPPORT
from .login import check_login
from .middleware import auth_middleware, check_not_blocked, check_rate
from .passwords import (HashPool, WeakPassword, check_strength, generate_password, hash_password, parse_basic,
                        verify_password)
from .tokens import TOKEN_HEADER, Principal, issue_token, verify_token

__all__ = ["BASIC", "CREDENTIAL_ROLES", "PUBLIC", "ROLES", "SUPPORT", "TOKEN_HEADER", "HashPool", "Principal",
           "WeakPassword", "auth_middleware", "check_login", "check_not_blocked", "check_rate", "check_strength",
           "generate_password", "hash_password", "issue_token", "parse_basic", "verify_password", "verify_token"]
