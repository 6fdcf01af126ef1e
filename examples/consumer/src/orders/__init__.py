"""A consumer's own FastAPI package (not this repository's example app)."""
