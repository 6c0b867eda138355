"""CRM sync, newsletter rendering and sending for the Club Japon des Hauts-de-France."""

__version__ = "0.1.0"
