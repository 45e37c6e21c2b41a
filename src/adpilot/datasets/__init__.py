"""datasets room."""
