"""Field patrols: stops, route planning, records and the printable PDF."""
