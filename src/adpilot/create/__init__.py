"""create room."""
