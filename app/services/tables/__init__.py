"""The county's base tables: categories and synonyms, the calendar, unit routing, unit names, users and units."""
