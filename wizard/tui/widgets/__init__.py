"""Reusable widgets of the wizard's Textual front end (one per module)."""
