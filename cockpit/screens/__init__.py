"""Screens of the full-screen app, one per module."""
