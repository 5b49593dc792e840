"""Reading ``VEIL_*`` variables. Each service declares its variables once, as a
pydantic model whose field ``name`` is read from ``VEIL_<NAME>`` (or the alias it
names) and typed; ``read`` validates a mapping (``os.environ``, or what ``veil serve``
will hand its workers) and a bad value names its variable, never its value, so that
``veil serve`` can refuse it before any worker starts (instead of each worker's
traceback). The models give only what is set: the settings' own defaults apply to the
rest, and their checks (which combinations work, what must be positive) run as for
settings built by hand.

Plain pydantic rather than pydantic-settings: ``veil serve`` validates the mapping it
will give its workers (the environment with its flags on top), and tests validate
mappings of their own, where ``BaseSettings`` reads the process's environment too; its errors
would still need ``_described`` to name variables; it decodes tuple fields such as
``VEIL_CORS_ORIGINS`` as JSON unless each is marked; and its ``env_ignore_empty`` would
also take an empty ``VEIL_SERVICE_SECRET`` for unset, which must be refused. It would
replace the alias generator and ``Unset``, and add a dependency."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Json, ValidationError
from pydantic_core import ErrorDetails

from veil.protocol import b64decode
from veil.web.jwks import JwksCachePolicy
from veil.web.origins import parse_origins

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _unset_if_empty(value: Any) -> Any:
    return None if value == "" else value


Unset = BeforeValidator(_unset_if_empty)


def _origins(value: Any) -> tuple[str, ...] | None:
    return None if value is None else parse_origins(value)


"""On a variable whose empty value means the same as leaving it unset."""


def _secret(text: Any) -> bytes:
    try:
        secret = b64decode(text)
    except (TypeError, ValueError):
        secret = b""
    if len(secret) != 32:
        raise ValueError("must be 32 random bytes, base64url-encoded (43 characters)")
    return secret


Secret = Annotated[bytes, BeforeValidator(_secret)]
"""A 32-byte secret, base64url; its value never appears in errors (and give its field
``repr=False``)."""

DEV_ISSUER = "veil-dev-idp"
"""The issuer expected when neither ``VEIL_JWT_ISSUER`` nor ``VEIL_JWT_ISSUER_URL`` is
set: the dev IdP's, when it is not served at a URL (``veil.idp``)."""

_PROBLEMS = {
    "int_parsing": "must be an integer",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "json_invalid": "must hold a JSON document",
}


def _described(error: ErrorDetails) -> str:
    variable = error["loc"][0]
    if error["type"] == "value_error":  # ours (``_secret``): says what is wrong, not the value
        return f"{variable} {error.get('ctx', {}).get('error')}"
    return f"{variable} {_PROBLEMS.get(error['type'], 'is not valid: ' + error['msg'])}"


class Variables(BaseModel):
    """What both services read: the data directory, the database and the tokens'
    settings (``veil.web.tokens.TokenPolicy``)."""

    model_config = ConfigDict(
        alias_generator=lambda name: f"VEIL_{name.upper()}",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
    )

    data_dir: Annotated[Path, Unset] = Path("./veil-data")
    database_url: Annotated[str | None, Unset] = None
    """Else a SQLite file in ``data_dir``."""
    issuer_url: Annotated[str | None, Unset] = Field(None, alias="VEIL_JWT_ISSUER_URL")
    """OIDC discovery; or ``VEIL_JWKS_URL`` or ``VEIL_JWKS`` (exactly one)."""
    jwks_url: str | None = None
    jwks: Json[Any] = None
    issuer: Annotated[str | None, Unset] = Field(None, alias="VEIL_JWT_ISSUER")
    """Default ``veil-dev-idp``, except with an issuer URL, whose discovery names it."""
    user_id_claim: Annotated[str | None, Unset] = Field(None, alias="VEIL_JWT_USER_ID_CLAIM")
    jwks_refresh_seconds: float | None = None
    jwks_min_refetch_seconds: float | None = None
    jwks_timeout_seconds: float | None = None
    jwks_max_stale_seconds: float | None = None
    """``JwksCachePolicy``'s fields, each ``VEIL_JWKS_<FIELD>``."""
    cors_origins: Annotated[tuple[str, ...] | None, BeforeValidator(_origins)] = None
    """Comma-separated web origins allowed to call from a browser (``veil.web.origins``)."""

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        try:
            return cls.model_validate(env)
        except ValidationError as error:
            problems = error.errors(include_url=False, include_input=False)
            raise ValueError("; ".join(map(_described, problems))) from None

    @classmethod
    def variable_names(cls) -> list[str]:
        """Every variable the model reads."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    def settings(
        self, target: "type[DataclassInstance]", overrides: Mapping[str, Any], database_file: str
    ) -> dict[str, Any]:
        """Keyword arguments for the ``target`` settings class: the variables that are
        set (the database a ``database_file`` in ``data_dir`` unless one is named),
        ``overrides`` on top."""
        names = {field.name for field in dataclasses.fields(target)}
        values = self.model_dump(include=names, exclude_none=True)
        values.setdefault("database_url", f"sqlite:///{(self.data_dir / database_file).as_posix()}")
        cache = {name: getattr(self, f"jwks_{name}") for name in _JWKS_CACHE}
        if any(value is not None for value in cache.values()):
            values["jwks_cache"] = JwksCachePolicy(
                **{name: value for name, value in cache.items() if value is not None}
            )
        values.update(overrides)
        if values.get("issuer") is None and values.get("issuer_url") is None:
            values["issuer"] = DEV_ISSUER
        return values


_JWKS_CACHE = tuple(field.name for field in dataclasses.fields(JwksCachePolicy))
