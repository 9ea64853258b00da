"""Alembic environment of the run catalogue: migrate the connection the program hands over.

:func:`perovlab_daq.catalog.engine.open_catalog` runs ``upgrade head`` with an open
connection in ``config.attributes["connection"]``; nothing here reads a URL or an ini file.
"""

from __future__ import annotations

from alembic import context

from perovlab_daq.catalog.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
