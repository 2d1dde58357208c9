"""Problem lists from spreadsheets: the per-row path and the bulk path."""
