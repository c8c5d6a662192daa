"""Alembic environment of the service database, driven from code (:func:`brainalign.service.db.upgrade`).

The caller hands an open connection in ``config.attributes["connection"]``; without
one (an ``alembic`` command line pointed here by hand), ``sqlalchemy.url`` is used.
"""
from __future__ import annotations

from alembic import context

from brainalign.service.db import engine_for, metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_for(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
