"""CityHub: the new-type smart city hub platform."""

__version__ = "0.1.0"
