"""A development identity provider. NOT for production.

It signs EdDSA (Ed25519) JWT identity assertions for any user name it is asked
for, so it proves nothing about anyone: it exists so ``veil demo``, ``veil serve``
and the tests have a real OIDC discovery document, JWKS endpoint and real signed
tokens. Real deployments point the services at their own IdP's issuer URL
(``VEIL_JWT_ISSUER_URL``) or JWKS (``VEIL_JWKS_URL``).
"""

from veil.idp.provider import DevIdentityProvider, create_app

__all__ = ["DevIdentityProvider", "create_app"]
