"""Security: hospital request signatures, staff tokens, encryption at rest, pseudonyms, masking."""
