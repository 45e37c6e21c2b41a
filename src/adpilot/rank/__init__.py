"""rank room."""
