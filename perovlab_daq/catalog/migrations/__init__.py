"""Alembic migrations of the run catalogue (shipped as package data, run on first use)."""
