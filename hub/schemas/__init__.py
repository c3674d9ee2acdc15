"""Request and response models of the REST API (pydantic). OpenAPI is generated from these."""
