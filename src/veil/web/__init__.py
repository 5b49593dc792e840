"""Pieces shared by Veil's HTTP services: errors, JWT checks, databases, limits."""
