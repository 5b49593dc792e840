"""Veil: end-to-end encryption for video conferencing on transform cryptography."""

__version__ = "0.1.0"
