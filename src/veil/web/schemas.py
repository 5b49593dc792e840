"""Types shared by Veil's HTTP APIs. Binary values travel as unpadded base64url strings."""

from typing import Annotated

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from veil.protocol import b64decode, b64encode


def _decode(value: object) -> bytes:
    if isinstance(value, bytes):  # built in code, not parsed from JSON
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64url string")
    return b64decode(value)


def _not_a_dot_segment(value: str) -> str:
    """``.`` and ``..`` fit the id alphabet but are URL dot-segments: a client or proxy
    that normalizes a URL removes them with the segment before, so a request about such
    an id would reach another route. No id may be one (422 ``validation_error``)."""
    if value in (".", ".."):
        raise ValueError("an id must not be '.' or '..' (URL dot-segments)")
    return value


B64 = Annotated[
    bytes,
    BeforeValidator(_decode),
    PlainSerializer(b64encode, return_type=str),
    WithJsonSchema({"type": "string", "format": "base64url", "pattern": "^[A-Za-z0-9_-]*$"}),
]
Id = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._@:~-]+$"),
    AfterValidator(_not_a_dot_segment),
]
Timestamp = Annotated[int, Field(ge=0, le=2**40)]
PathId = Annotated[
    str,
    Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._@:~-]+$"),
    AfterValidator(_not_a_dot_segment),
]
"""An id in a URL path: checked before it reaches a query (PostgreSQL refuses NUL bytes)."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Share(Model):
    """A 128-bit share of a user's split-trust escrow password."""

    share: B64
