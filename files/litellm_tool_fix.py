"""Placeholder until the tool-fix callback lands (issue 5)."""
