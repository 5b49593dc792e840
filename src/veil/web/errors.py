"""API errors: a stable machine ``code``, an HTTP status and a human message.

Every refusal (4xx) and every 503 is ``{"error": {"code": ..., "message": ...}}``
(``ErrorBody``); only an unexpected failure is Starlette's plain-text 500. Messages
never carry key material, tokens or request bodies.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from veil.crypto.errors import AuthenticationError, DecodeError
from veil.web.schemas import Model


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def forbidden(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def unprocessable(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


class ErrorDetail(Model):
    code: str
    """Stable, for programs: ``unsigned_request``, ``not_member``, ``validation_error``..."""
    message: str
    """For people; it may change."""


class ErrorBody(Model):
    """Every refusal's body (``error_body``)."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Refused; `error.code` says why"}
}
"""What a route documents for its 4xx answers, in place of FastAPI's default 422 schema
(``{"detail": [...]}``), which these services never send."""


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return JSONResponse(error_body("validation_error", message), status_code=422)

    @app.exception_handler(DecodeError)
    async def decode_error(_: Request, exc: DecodeError) -> JSONResponse:
        return JSONResponse(error_body("invalid_encoding", str(exc)), status_code=422)

    @app.exception_handler(AuthenticationError)
    async def authentication_error(_: Request, exc: AuthenticationError) -> JSONResponse:
        return JSONResponse(
            error_body("bad_signature", "a signature or proof did not verify"), status_code=400
        )

    @app.exception_handler(IntegrityError)
    async def integrity_error(_: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced to create the same thing; the database kept one.
        return JSONResponse(
            error_body("conflict", "a concurrent request changed this first; retry"),
            status_code=409,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)
