"""Where the browser SDK (``web/``) is: the page ``veil serve`` shows at ``/app/`` and
``veil bench web`` measure it there. ``$VEIL_WEB_DIR``, else the ``web/`` beside
``src/`` of the checkout this package runs from (an editable install). An installed
wheel carries no ``web/``: whoever needs it says so, with ``BUILD_COMMAND``."""

import os
from pathlib import Path

BUILD_COMMAND = "cd web && npm ci && npm run build"


def default_web_dir() -> Path:
    configured = os.environ.get("VEIL_WEB_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web"
