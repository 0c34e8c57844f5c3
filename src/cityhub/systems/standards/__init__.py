"""The standards system: code tables, data models and validation, evaluation indicators."""
