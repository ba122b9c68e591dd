"""Alembic migrations: the database schema, written as DDL (no ORM models)."""
