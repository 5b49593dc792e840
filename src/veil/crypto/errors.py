"""The exceptions ``veil.crypto`` raises.

::

    VeilCryptoError
     ├── AuthenticationError      says nothing more, on purpose
     │    ├── DecryptionError     bad tag, wrong key, tampered ciphertext
     │    └── InvalidSignature    bad or missing signature, unexpected signer
     ├── ReplayedFrame            an SFrame counter seen before or too old
     ├── UnknownKeyId (LookupError) an SFrame KID with no key (yet, or any more)
     └── DecodeError (ValueError) malformed wire input; the message says what
          ├── InvalidLength
          ├── UnsupportedVersion
          ├── NonCanonicalEncoding
          ├── NotOnCurve
          ├── NotInSubgroup
          └── IdentityElement

Caller mistakes (a wrong argument type, an out-of-range option) are plain
``TypeError``/``ValueError``. No message ever contains key material.
"""


class VeilCryptoError(Exception):
    """Base class of every exception raised by ``veil.crypto``."""


class AuthenticationError(VeilCryptoError):
    """Authentication failed. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__()

    def __str__(self) -> str:
        return self.__class__.__name__


class DecryptionError(AuthenticationError):
    """A ciphertext did not authenticate under the key it was opened with."""


class InvalidSignature(AuthenticationError):
    """A signature did not verify, or was made by a signer other than the one required."""


class ReplayedFrame(VeilCryptoError):
    """An SFrame frame's counter was already accepted, or lies behind the replay window."""


class UnknownKeyId(VeilCryptoError, LookupError):
    """An SFrame frame names a KID this receiver holds no key for."""


class DecodeError(VeilCryptoError, ValueError):
    """Wire input is malformed. The message names the structure and the defect."""


class InvalidLength(DecodeError):
    """Input is shorter or longer than its structure allows."""


class UnsupportedVersion(DecodeError):
    """The leading version or kind byte is not one this code reads."""


class NonCanonicalEncoding(DecodeError):
    """The bytes are not the one canonical encoding of a value (flags, field range)."""


class NotOnCurve(DecodeError):
    """The encoded point does not satisfy the curve equation."""


class NotInSubgroup(DecodeError):
    """The encoded element is not in the prime-order subgroup."""


class IdentityElement(DecodeError):
    """The identity element appears where it is not allowed."""
