"""The bounce mailbox: read DSNs and complaint reports over IMAP, classify, match, record."""
