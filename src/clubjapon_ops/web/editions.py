"""Public edition pages (the editions issue): their routes go here. None yet.

Only published editions may be served from here, with no contact data: never reuse the
preview's views, which show stored contacts and unpublished editions.
"""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("editions", __name__)
