"""API documentation that works on a closed network.

FastAPI's ``/docs`` and ``/redoc`` pages load their scripts from a public CDN, so on a
closed network they render blank. The services therefore serve the OpenAPI document
alone, at ``/openapi.json``, for whatever viewer or client generator an integrator
runs locally.
"""

from typing import Any, Final

NO_CDN_DOCS: Final[dict[str, Any]] = {"docs_url": None, "redoc_url": None}
