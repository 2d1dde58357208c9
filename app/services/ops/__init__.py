"""Operations: backup and restore, the demo seed and files, the setup check."""
