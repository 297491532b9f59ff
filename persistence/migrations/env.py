"""Alembic environment: run by `persistence.migrate` with a live connection in `attributes`."""

from __future__ import annotations

from alembic import context

from persistence.tables import read_metadata, write_metadata

config = context.config
connection = config.attributes["connection"]
target = config.attributes["target"]

context.configure(
    connection=connection,
    target_metadata=write_metadata if target == "write" else read_metadata,
    version_table=f"alembic_version_{target}",
    render_as_batch=connection.dialect.name == "sqlite",
    # The other target's tables may share this database; they are not this history's to drop.
    include_object=lambda _obj, _name, kind, reflected, compare_to: (
        not (kind == "table" and reflected and compare_to is None)
    ),
)
with context.begin_transaction():
    context.run_migrations()
