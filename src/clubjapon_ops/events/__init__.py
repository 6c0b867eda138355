"""Provider events (webhooks): parse, authenticate, normalise; the store keeps them."""
