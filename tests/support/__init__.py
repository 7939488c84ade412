"""Builders and helpers the unit and e2e tests share."""
