"""A service's own sealing of its secrets."""

import pytest

from veil.crypto.errors import DecryptionError
from veil.crypto.sealing import Sealer, derive_service_key

ROOT = bytes(range(32))


def test_sealed_secrets_open_only_under_their_key_and_context() -> None:
    sealer = Sealer(derive_service_key(ROOT, b"augmentation seal"))
    sealed = sealer.seal(b"secret", context=b"alice")
    assert sealer.open(sealed, context=b"alice") == b"secret"
    with pytest.raises(DecryptionError):
        sealer.open(sealed, context=b"bob")
    with pytest.raises(DecryptionError):
        Sealer(derive_service_key(ROOT, b"other purpose")).open(sealed, context=b"alice")
    with pytest.raises(DecryptionError):
        sealer.open(sealed[:-1], context=b"alice")


def test_the_sealer_hides_its_key() -> None:
    key = derive_service_key(ROOT, b"augmentation seal")
    assert key.hex() not in repr(Sealer(key)) and "<hidden>" in repr(Sealer(key))
