"""Alembic revisions of the run catalogue, oldest first."""
