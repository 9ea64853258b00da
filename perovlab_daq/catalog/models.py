"""The catalogue's tables: one row per run, one row per key figure of a run.

SQLAlchemy 2 typed ORM. The schema is created and changed only by the Alembic
migrations in ``migrations/versions`` (run by :func:`perovlab_daq.catalog.engine.open_catalog`);
these classes must match the latest migration. Times are stored as naive UTC (the same
on SQLite, which has no time zones, and on PostgreSQL).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

log = logging.getLogger(__name__)

#: Longest identifier kept in an indexed column (sample, station, ...); longer ones are cut.
NAME_LENGTH = 128


class Base(DeclarativeBase):
    """Declarative base of the catalogue tables."""


class Run(Base):
    """One run file: who, what, when and how it ended (``runs`` table).

    ``run_id`` is the file's ``entry/provenance/run_id`` (a UUID written when the file is
    created), or for a file without one an id derived from what identifies it (see
    :func:`perovlab_daq.catalog.index.derived_run_id`).
    """

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    station: Mapped[str] = mapped_column(String(NAME_LENGTH), default="", index=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    sample: Mapped[str] = mapped_column(String(NAME_LENGTH), default="", index=True)
    device: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    pixel: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    operator: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    procedure: Mapped[str] = mapped_column(String(NAME_LENGTH), default="", index=True)
    status: Mapped[str] = mapped_column(String(32), default="", index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    started_utc: Mapped[datetime | None] = mapped_column(DateTime(), index=True)
    ended_utc: Mapped[datetime | None] = mapped_column(DateTime())
    simulated: Mapped[bool | None] = mapped_column(Boolean())
    #: Size (B) and modification time (ns) of the file when it was last read: an
    #: unchanged file is not read again by ``runs index``.
    file_size: Mapped[int | None] = mapped_column(BigInteger())
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger())
    #: When this row was last written (UTC), by a run or by ``runs index``.
    updated_utc: Mapped[datetime] = mapped_column(DateTime())

    figures: Mapped[list[KeyFigure]] = relationship(
        back_populates="run", cascade="all, delete-orphan", lazy="selectin"
    )


class KeyFigure(Base):
    """One key figure of a run (``key_figures`` table): a number (or a text) with its unit.

    Numbers are in ``value`` (NaN stored as NULL), texts such as ``el_spectrum_source``
    in ``text``; range filters look at ``value``.
    """

    __tablename__ = "key_figures"
    __table_args__ = (Index("ix_key_figures_name_value", "name", "value"),)

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float())
    text: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(32), default="")

    run: Mapped[Run] = relationship(back_populates="figures")
