"""Reusable dashboard widgets. The screen sets their reactives; they post messages up."""
