"""Use-cases. Each takes a SQLAlchemy session (no Flask globals) and raises ServiceError."""
