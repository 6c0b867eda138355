"""Delivery: MIME messages, transports, the campaign sender and its ledger."""
