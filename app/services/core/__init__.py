"""The leaf layer: errors, access, audit, parsers, text and spreadsheet cells. Imports only models."""
