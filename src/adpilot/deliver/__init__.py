"""deliver room."""
