"""The key service: Veil's zero-trust transform service (DESIGN §1-§2).

It stores public keys, escrowed (encrypted) user keys, transform keys, groups and a
hash-chained audit log, and transforms encrypted keys for the device that asks. It
never holds a private key that could decrypt a session key or a document.
"""

from veil.keyserver.app import create_app
from veil.keyserver.settings import KeyServerSettings

__all__ = ["KeyServerSettings", "create_app"]
