"""understand room."""
