"""HubSpot contact lists through the Lists API v3: every list by name, then its members.

Membership changes do not touch a contact's ``lastmodifieddate``, so the incremental
contact search cannot see them: each sync reads every contact list's members again, one
request per 250 members (a club's 10,000 contacts in 20 lists: about 20 + members / 250
requests), and replaces what the store holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from clubjapon_ops.crm.base import CrmList
from clubjapon_ops.crm.hubspot import parse_answer
from clubjapon_ops.errors import SourceError
from clubjapon_ops.http.client import HttpClient, MalformedPage

log = logging.getLogger(__name__)

SEARCH_PATH = "/crm/v3/lists/search"
MEMBERSHIPS_PATH = "/crm/v3/lists/{list_id}/memberships"
SEARCH_COUNT = 500  # the most lists search gives per page
MEMBERSHIPS_LIMIT = 250  # the most members a memberships page gives
CONTACTS_TYPE = "0-1"  # objectTypeId of contacts; lists of companies or deals are not ours


def parse_search(document: Any) -> tuple[list[Any], bool, int]:
    """Check the shape of a lists search answer: its lists, hasMore, and the next offset."""
    if not isinstance(document, dict) or not isinstance(document.get("lists"), list):
        raise MalformedPage("the answer has no 'lists' list")
    offset = document.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise MalformedPage("the answer's 'offset' is not a number")
    return document["lists"], document.get("hasMore") is True, offset


class HubSpotLists:
    """Reads HubSpot's contact lists and their members; counts the requests it made."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.requests = 0

    def catalogue(self) -> list[CrmList]:
        """Every contact list, by name, with its ILS id."""
        found: list[CrmList] = []
        offset = 0
        while True:
            lists, more, nxt = self.client.post(
                SEARCH_PATH, parse_search,
                body={"query": "", "offset": offset, "count": SEARCH_COUNT})
            self.requests += 1
            for item in lists:
                if not isinstance(item, dict) or item.get("objectTypeId") != CONTACTS_TYPE:
                    continue
                ident, name = item.get("listId"), item.get("name")
                if isinstance(ident, str | int) and isinstance(name, str) and name.strip():
                    found.append(CrmList(name, str(ident)))
            if not more or not lists:
                return found
            if nxt <= offset:
                raise SourceError(f"HubSpot lists search gave the offset {nxt} after {offset}; "
                                  "stopping instead of looping")
            offset = nxt

    def members(self, list_id: str) -> list[str]:
        """The record ids of a list's members, every page of them."""
        ids: list[str] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"limit": MEMBERSHIPS_LIMIT}
            if after is not None:
                params["after"] = after
            answer = self.client.get(MEMBERSHIPS_PATH.format(list_id=list_id), parse_answer,
                                     params=params)
            self.requests += 1
            for item in answer.results:
                record = item.get("recordId") if isinstance(item, dict) else None
                if isinstance(record, str | int) and not isinstance(record, bool):
                    ids.append(str(record))
            if answer.next_after is None:
                return ids
            if answer.next_after in seen:
                raise SourceError(f"HubSpot returned the memberships cursor "
                                  f"{answer.next_after!r} of list {list_id} twice; stopping")
            seen.add(answer.next_after)
            after = answer.next_after

    def memberships(self) -> Iterator[tuple[CrmList, list[str]]]:
        """Each contact list with its members' record ids."""
        for crm_list in self.catalogue():
            yield crm_list, self.members(str(crm_list.crm_id))
