"""The newsletter: edition content, templates, rendering once per language, lint and preview."""
