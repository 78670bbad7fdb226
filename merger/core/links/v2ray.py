"""Placeholder until this protocol family's parsers land."""

PARSERS: dict = {}
SERIALIZERS: dict = {}
