"""Field patrols: choosing stops, planning the route, stored records and the printable PDF."""
