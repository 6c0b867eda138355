"""Check requests to HubSpot, Brevo and SendGrid (and the fakes' answers) against their specs.

The vendored OpenAPI documents under tests/specs/<vendor>/ (see each SOURCE.md) are read once.
A request is matched to an operation by method and path; a path that is no vendor's (a fake's
control endpoint, a made-up path in an HTTP-layer test) is not checked. For a match, the
query parameters and the JSON body are validated with jsonschema, the body strictly: an
object schema that lists its properties allows no others, so a misspelt or invented field
fails even where the vendor's document forgot ``additionalProperties: false``. Answers are
validated leniently (vendors add fields), and only for the statuses the spec describes.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

HERE = Path(__file__).resolve().parent
# vendor -> (document, prefix of our request paths that the document's paths leave out)
DOCUMENTS = {
    "hubspot": (HERE / "hubspot" / "contacts-v3.json", ""),
    "hubspot-lists": (HERE / "hubspot" / "lists-v3.json", ""),
    "brevo": (HERE / "brevo" / "brevo-v3.json", "/v3"),  # its server URL ends in /v3
    "sendgrid": (HERE / "sendgrid" / "mail-send.json", ""),
}
_METHODS = ("get", "put", "post", "delete", "patch")
_COMPOSED = ("allOf", "anyOf", "oneOf", "$ref")


class SpecViolation(AssertionError):
    """A request the vendor's specification does not allow (or a fake's answer it does not)."""


@dataclass(frozen=True)
class Operation:
    """One method on one path of a vendor's document."""

    vendor: str
    method: str
    template: str
    pattern: re.Pattern[str]
    pointer: str  # JSON pointer of the operation in the document
    spec: dict[str, Any] = field(repr=False, hash=False, compare=False)

    @property
    def name(self) -> str:
        """How violations name it: vendor, method and the documented path."""
        return f"{self.vendor} {self.method.upper()} {self.template}"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` in plain JSON Schema terms (draft 4 has no 'null' flag)."""
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


_MAX_CHARS = re.compile(r"Maximum allowed characters are (\d+)")
# Limits a document states in a description only, as (JSON pointer, keyword, value, the
# words that say so). Brevo's messageVersions: "you can still pass upto 99 recipients
# maximum in one message version".
_PROSE_LIMITS = (
    ("/components/schemas/sendSmtpEmail/properties/messageVersions/items/properties/to",
     "maxItems", 99),
    # SendGrid: "The key/value pairs must be strings" (substitutions, custom_args, headers).
    *((f"/paths/~1v3~1mail~1send/post/requestBody/content/application~1json/schema/properties/"
       f"personalizations/items/properties/{name}", "additionalProperties", {"type": "string"})
      for name in ("substitutions", "custom_args", "headers")),
    *((f"/paths/~1v3~1mail~1send/post/requestBody/content/application~1json/schema/properties/"
       f"{name}", "additionalProperties", {"type": "string"})
      for name in ("custom_args", "headers")),
)


def _prose(node: Any) -> Any:
    """Turn limits the vendor writes in descriptions into schema keywords.

    Brevo writes "**Maximum allowed characters are 70**" beside every name field instead of
    ``maxLength: 70``; a check that skipped it would let a long name through.
    """
    if isinstance(node, list):
        return [_prose(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _prose(v) for k, v in node.items()}
    found = _MAX_CHARS.search(str(out.get("description", "")))
    if found and out.get("type") == "string" and "maxLength" not in out:
        out["maxLength"] = int(found.group(1))
    return out


def _apply_limits(document: dict[str, Any]) -> dict[str, Any]:
    document = _prose(document)
    for pointer, keyword, value in _PROSE_LIMITS:
        node: Any = document
        try:
            for token in pointer.strip("/").split("/"):
                node = node[token.replace("~1", "/").replace("~0", "~")]
        except KeyError:
            continue  # another vendor's document
        node.setdefault(keyword, value)
    return document


def _strict(node: Any) -> Any:
    """Close every object schema that lists its properties: no field the spec does not name."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    # A schema taking part in a composition is left open: allOf parts each list only some
    # of the properties, and closing them would refuse the others.
    if ("properties" in out and "additionalProperties" not in out
            and not any(k in out for k in _COMPOSED)):
        out["additionalProperties"] = False
    return out


class Spec:
    """One vendor's document, with validators built on demand."""

    def __init__(self, vendor: str, path: Path, prefix: str) -> None:
        self.vendor = vendor
        self.prefix = prefix
        document = json.loads(path.read_text(encoding="utf-8"))
        modern = str(document.get("openapi", "")).startswith("3.1")
        self._cls: type[Validator] = Draft202012Validator if modern else Draft4Validator
        kind = DRAFT202012 if modern else DRAFT4
        if not modern:
            document = _nullable(document)
        document = _apply_limits(document)
        self.uri = f"urn:clubjapon-specs:{vendor}"
        self.lenient = self._registry(document, kind)
        self.strict = self._registry(_strict(copy.deepcopy(document)), kind)
        self.document = document
        self.operations = [
            Operation(vendor, method, template, self._pattern(prefix + template),
                      f"/paths/{_escape(template)}/{method}", item[method])
            for template, item in document["paths"].items()
            for method in _METHODS if method in item
        ]

    def _registry(self, document: dict[str, Any], kind: Any) -> Registry[Any]:
        return Registry().with_resource(self.uri, Resource(contents=document, specification=kind))

    @staticmethod
    def _pattern(template: str) -> re.Pattern[str]:
        parts = re.split(r"\{([^}]+)\}", template)
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)"
                        for i, p in enumerate(parts))
        return re.compile(regex + "$")

    @cache  # noqa: B019 - a handful of Spec objects live for the whole session
    def validator(self, pointer: str, strict: bool) -> Validator:
        """A validator for the schema at ``pointer`` of the document."""
        registry = self.strict if strict else self.lenient
        return self._cls({"$ref": f"{self.uri}#{pointer}"}, registry=registry)


@cache
def specs() -> tuple[Spec, ...]:
    """The vendored documents, read once per test session."""
    return tuple(Spec(vendor, path, prefix) for vendor, (path, prefix) in DOCUMENTS.items())


def find(method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
    """The operation for a request; (None, {}, known) where ``known`` says the path is a
    vendor's even though this method is not documented on it."""
    known = False
    for spec in specs():
        for operation in spec.operations:
            found = operation.pattern.match(path)
            if found is None:
                continue
            known = True
            if operation.method == method.lower():
                return operation, found.groupdict(), True
    return None, {}, known


def _spec_of(operation: Operation) -> Spec:
    return next(s for s in specs() if s.vendor == operation.vendor)


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """A query or path string as the type its schema declares, so the schema can judge it."""
    kind = schema.get("type")
    if kind == "array":
        return [_coerce(v, schema.get("items") or {}) for v in value.split(",")]
    if kind == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _messages(validator: Validator, instance: Any, where: str) -> list[str]:
    """One line per kind of error: the same error on many items is said once, counted."""
    counts: dict[str, int] = {}
    for error in validator.iter_errors(instance):
        # Items of a list are told apart by '*': 150 versions with one fault make one line.
        at = "/".join("*" if isinstance(p, int) else str(p) for p in error.absolute_path)
        text = error.message
        if len(text) > 120:  # it quotes a long value: say which rule it breaks instead
            text = f"breaks {error.validator}: {json.dumps(error.validator_value)[:80]}"
        line = f"{where}{'/' + at if at else ''}: {text}"
        counts[line] = counts.get(line, 0) + 1
    return [line + (f" ({n} times)" if n > 1 else "") for line, n in sorted(counts.items())]


def check_request(method: str, path: str, query: Mapping[str, str], body: Any) -> list[str]:
    """What is wrong with this request by the vendor's spec; [] when it conforms or is none
    of theirs. ``query`` holds decoded values (as the server sees them); ``body`` the JSON."""
    operation, path_values, known = find(method, path)
    if operation is None:
        return [f"{method} {path}: the vendor's spec has no such operation"] if known else []
    spec = _spec_of(operation)
    name, problems = operation.name, []
    parameters = {(p["in"], p["name"]): (i, p)
                  for i, p in enumerate(operation.spec.get("parameters", []))}
    for (where, pname), (index, parameter) in parameters.items():
        given = query.get(pname) if where == "query" else path_values.get(pname)
        if given is None:
            if parameter.get("required") and where in ("query", "path"):
                problems.append(f"{name}: required {where} parameter {pname!r} is missing")
            continue
        pointer = f"{operation.pointer}/parameters/{index}/schema"
        problems += _messages(spec.validator(pointer, strict=False),
                              _coerce(given, parameter.get("schema") or {}),
                              f"{name}: {where} parameter {pname!r}")
    problems += [f"{name}: query parameter {q!r} is not in the spec"
                 for q in query if ("query", q) not in parameters]
    request_body = operation.spec.get("requestBody")
    if request_body is None:
        if body is not None:
            problems.append(f"{name}: the spec takes no body")
        return problems
    if body is None:
        if request_body.get("required"):
            problems.append(f"{name}: the required body is missing")
        return problems
    if "application/json" not in request_body.get("content", {}):
        return [*problems, f"{name}: the spec takes no JSON body"]
    pointer = f"{operation.pointer}/requestBody/content/application~1json/schema"
    problems += _messages(spec.validator(pointer, strict=True), body, f"{name}: body")
    return problems + [f"{name}: body: {p}" for p in _sizes(operation, body)]


def _bytes(value: Any) -> int:
    if isinstance(value, dict):
        return sum(len(str(k).encode()) + _bytes(v) for k, v in value.items())
    return len(str(value).encode())


def _sizes(operation: Operation, body: Any) -> list[str]:
    """Size limits the vendors state in prose, which no JSON Schema keyword can say."""
    if not isinstance(body, dict):
        return []
    found = []
    if operation.name == "sendgrid POST /v3/mail/send":
        # "The total collective size of your substitutions may not exceed 10,000 bytes per
        # personalization object"; custom_args: "may not exceed 10,000 bytes".
        for n, item in enumerate(body.get("personalizations") or []):
            for key in ("substitutions", "custom_args"):
                size = _bytes(item.get(key) or {}) if isinstance(item, dict) else 0
                if size > 10_000:
                    found.append(f"personalizations/{n}/{key}: {size} bytes > 10,000")
    if operation.name == "brevo POST /smtp/email":
        # "The size of individual params in all the messageVersions shall not exceed 100 KB
        # limit and that of cumulative params shall not exceed 1000 KB"; "Total number of
        # recipients in one API request must not exceed 2000".
        versions = [v for v in body.get("messageVersions") or [] if isinstance(v, dict)]
        sizes = [len(json.dumps(v.get("params") or {}).encode()) for v in versions]
        found += [f"messageVersions/{n}/params: {s} bytes > 100 KB"
                  for n, s in enumerate(sizes) if s > 100_000]
        if sum(sizes) > 1_000_000:
            found.append(f"messageVersions/*/params: {sum(sizes)} bytes in all > 1000 KB")
        recipients = sum(len(v.get(k) or []) for v in versions for k in ("to", "cc", "bcc"))
        if recipients > 2000:
            found.append(f"{recipients} recipients in one request > 2000")
    return found


def check_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """What is wrong with an answer by the spec (statuses it does not describe: nothing)."""
    operation, _, _ = find(method, path)
    if operation is None:
        return []
    answer = operation.spec.get("responses", {}).get(str(status))
    if answer is None or "$ref" in answer:
        return []
    content = answer.get("content", {})
    if "application/json" not in content or "schema" not in content["application/json"]:
        return []
    pointer = (f"{operation.pointer}/responses/{status}/content/application~1json/schema")
    return _messages(_spec_of(operation).validator(pointer, strict=False), body,
                     f"{operation.name}: answer {status}")


def assert_conforms(method: str, path: str, query: Mapping[str, str] | None = None,
                    body: Any = None) -> None:
    """Raise SpecViolation listing what is wrong with one request."""
    problems = check_request(method, path, query or {}, body)
    if problems:
        raise SpecViolation("\n".join(problems))


def documented_examples(vendor: str, operation_path: str, method: str) -> Iterable[Any]:
    """The example bodies the vendor's spec gives for an operation's 2xx JSON answers."""
    spec = next(s for s in specs() if s.vendor == vendor)
    operation = spec.document["paths"][operation_path][method]
    for status, answer in operation.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        media = answer.get("content", {}).get("application/json", {})
        if "example" in media:
            yield media["example"]
        yield from (e.get("value") for e in media.get("examples", {}).values())
