"""Helpers the unit and integration tests share: fakes, database access, DynamoDB fixtures' data."""
