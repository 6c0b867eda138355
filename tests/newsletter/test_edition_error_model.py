"""The plain words come from pydantic's error types and the model's annotations, not from
a list of fields: a field added to the model later gets them too (issue 24, item 4)."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from clubjapon_ops.newsletter.edition_errors import model_problems
from clubjapon_ops.newsletter.model import HttpsUrl, Lang


def _image_file(name: str) -> str:
    if "/" in name:
        raise ValueError("expected a file name under config/editions/media/, without a folder")
    return name


class Future(BaseModel):
    """Fields like those a later change may add: a URL per language, a media file."""

    model_config = ConfigDict(extra="forbid")
    link: HttpsUrl | dict[Lang, HttpsUrl]
    file: Annotated[str, AfterValidator(_image_file)] | None = None
    sizes: list[int] = Field(default=[], max_length=2)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"link": ["https://a.example"]},
         "link: expected a web address starting with https:// or one web address starting with "
         "https:// per language: fr, en, ja (found a list)"),
        ({"link": {"fr": "https://a.example", "de": "https://b.example"}},
         "link.de: unknown language 'de': expected one of fr, en, ja"),
        ({"link": "https://a.example", "file": "photos/a.jpg"},
         "file: expected a file name under config/editions/media/, without a folder (found the "
         "text 'photos/a.jpg')"),
        ({"link": "https://a.example", "sizes": ["big"]},
         "sizes[0]: expected a whole number (found the text 'big')"),
        ({"link": "https://a.example", "fiel": "a.jpg"},
         "fiel: unknown key: did you mean 'file'?"),
        ({}, "link: missing: add it (a web address starting with https:// or one web address "
             "starting with https:// per language: fr, en, ja)"),
    ],
    ids=["list-for-url", "language", "own-validator", "list-item", "typo", "missing"],
)
def test_a_new_field_gets_plain_words(data: dict[str, object], said: str) -> None:
    with pytest.raises(ValidationError) as info:
        Future.model_validate(data)
    found = model_problems(info.value.errors(), lambda loc: 1, Future)
    assert found == [(1, said)]
    for words in ("Input should", "Value error", "Field required", "function-after"):
        assert words not in said
