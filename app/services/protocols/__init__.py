"""Machine doors: the JSON API, its OpenAPI document, OGC API Features and Open311."""
