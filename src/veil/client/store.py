"""A device's saved context, encrypted at rest.

The context holds the device's private keys, its ids, the user's master public key,
the pinned public keys of other users and, in device-approval mode, the user's
private key. It is sealed with AES-256-GCM (``veil.crypto.aead``) under a 32-byte
storage key the application supplies (from the platform's keychain or keystore);
without that key the saved file is opaque.
"""

import json
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from veil.crypto.aead import open_document, seal_document
from veil.crypto.keys import PrivateKey, PublicKey
from veil.crypto.signing import SigningKey
from veil.protocol import b64decode, b64encode

Mode = Literal["split-trust", "password", "approval"]
_DOCUMENT_ID = "veil-device-context-v1"


@dataclass
class DeviceContext:
    user_id: str
    device_id: str
    mode: Mode
    device_key: PrivateKey = field(repr=False)
    signer: SigningKey = field(repr=False)
    master: PublicKey
    user_key: PrivateKey | None = field(default=None, repr=False)
    pins: dict[str, bytes] = field(default_factory=dict, repr=False)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "mode": self.mode,
                "device_key": b64encode(self.device_key.to_secret_bytes()),
                "signer": b64encode(self.signer.to_secret_bytes()),
                "master": b64encode(bytes(self.master)),
                "user_key": b64encode(self.user_key.to_secret_bytes()) if self.user_key else None,
                "pins": {user: b64encode(key) for user, key in self.pins.items()},
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceContext":
        d = json.loads(data)
        return cls(
            user_id=d["user_id"],
            device_id=d["device_id"],
            mode=d["mode"],
            device_key=PrivateKey.from_secret_bytes(b64decode(d["device_key"])),
            signer=SigningKey.from_secret_bytes(b64decode(d["signer"])),
            master=PublicKey.from_bytes(b64decode(d["master"])),
            user_key=PrivateKey.from_secret_bytes(b64decode(d["user_key"]))
            if d["user_key"]
            else None,
            pins={user: b64decode(key) for user, key in d["pins"].items()},
        )


class DeviceStore(ABC):
    """Where a device keeps its sealed context."""

    def __init__(self, storage_key: bytes) -> None:
        if len(storage_key) != 32:
            raise ValueError("the storage key is 32 bytes")
        self._key = storage_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(...)"

    def load(self) -> DeviceContext | None:
        """The saved context; ``DecryptionError`` if it was altered or the key is wrong."""
        sealed = self._read()
        if sealed is None:
            return None
        return DeviceContext.from_bytes(open_document(self._key, _DOCUMENT_ID, sealed))

    def save(self, context: DeviceContext) -> None:
        self._write(seal_document(self._key, _DOCUMENT_ID, context.to_bytes()))

    @abstractmethod
    def _read(self) -> bytes | None: ...

    @abstractmethod
    def _write(self, sealed: bytes) -> None: ...

    @abstractmethod
    def clear(self) -> None: ...


class FileDeviceStore(DeviceStore):
    """A file, written atomically with mode 0600."""

    def __init__(self, path: Path | str, storage_key: bytes) -> None:
        super().__init__(storage_key)
        self.path = Path(path)

    def _read(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def _write(self, sealed: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".veil-device-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(sealed)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class MemoryDeviceStore(DeviceStore):
    """Kept in memory (sealed all the same): for the demo and tests."""

    def __init__(self, storage_key: bytes) -> None:
        super().__init__(storage_key)
        self.sealed: bytes | None = None

    def _read(self) -> bytes | None:
        return self.sealed

    def _write(self, sealed: bytes) -> None:
        self.sealed = sealed

    def clear(self) -> None:
        self.sealed = None
