"""The campaign report: figures of one edition, as a terminal table and an HTML page."""
