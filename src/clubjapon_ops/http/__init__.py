"""The one HTTP layer: client and retries, pacing, and each vendor's API definition."""
