"""The conference service: meeting rooms with a message board and a media relay."""

from veil.conference.app import create_app
from veil.conference.settings import ConferenceSettings

__all__ = ["ConferenceSettings", "create_app"]
