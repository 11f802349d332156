"""Checks the committed OpenAPI document against the contract checklist.

openapi-spec-validator proves the document is valid OpenAPI 3; this proves it
is a good contract for SDK generators and people:

- info has title, version, license and contact; there is a servers entry;
- a bearer security scheme is declared, and every protected operation uses it
  and documents its 401;
- every operation has a unique camelCase operationId, a tag, a summary and a
  description;
- every request body and every success response body has an example (on the
  schema, which is where Swagger UI and the fuzzer read it);
- every 4xx/5xx response is application/problem+json with the Problem schema;
- no untyped object (an object schema with no properties and no
  additionalProperties), no unsigned 64-bit integer, and no optional property
  whose example or default is null unless it is nullable.

Usage: python check_document.py openapi.json
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    errors: list[str] = []
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = schemas[name]
        return schema

    def has_example(schema: dict[str, Any]) -> bool:
        schema = resolve(schema)
        if "example" in schema or "examples" in schema:
            return True
        if schema.get("type") == "array" and "items" in schema:
            return has_example(schema["items"])
        return False

    info = doc.get("info", {})
    for field in ("title", "version", "license", "contact"):
        if not info.get(field):
            errors.append(f"info.{field} is missing")
    if not doc.get("servers"):
        errors.append("no servers entry")

    schemes = doc.get("components", {}).get("securitySchemes", {})
    bearer = [
        name
        for name, s in schemes.items()
        if s.get("type") == "http" and s.get("scheme", "").lower() == "bearer"
    ]
    if not bearer:
        errors.append("no bearer security scheme")

    ids: set[str] = set()
    operations = 0
    for path_name, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            operations += 1
            where = f"{method.upper()} {path_name}"
            op_id = op.get("operationId", "")
            if not CAMEL.match(op_id):
                errors.append(f"{where}: operationId {op_id!r} is not camelCase")
            if op_id in ids:
                errors.append(f"{where}: duplicate operationId {op_id}")
            ids.add(op_id)
            for field in ("summary", "description"):
                if not op.get(field):
                    errors.append(f"{where}: no {field}")
            if not op.get("tags"):
                errors.append(f"{where}: no tag")

            security = op.get("security")
            if security is not None:
                used = {name for requirement in security for name in requirement}
                if not used <= set(schemes):
                    errors.append(f"{where}: unknown security scheme {used - set(schemes)}")
                if "401" not in op.get("responses", {}):
                    errors.append(f"{where}: protected but 401 is not documented")

            body = op.get("requestBody")
            if body is not None:
                for media, content in body.get("content", {}).items():
                    if "example" not in content and "examples" not in content and not has_example(
                        content.get("schema", {})
                    ):
                        errors.append(f"{where}: request body {media} has no example")

            responses = op.get("responses", {})
            if not any(status.startswith("2") for status in responses):
                errors.append(f"{where}: no success response")
            for status, response in responses.items():
                content = response.get("content", {})
                if status.startswith("2"):
                    for media, c in content.items():
                        if not has_example(c.get("schema", {})) and "example" not in c:
                            errors.append(f"{where} {status}: response {media} has no example")
                elif status[0] in "45":
                    problem = content.get("application/problem+json")
                    if problem is None or set(content) != {"application/problem+json"}:
                        errors.append(f"{where} {status}: not only application/problem+json")
                    elif resolve(problem.get("schema", {})) is not schemas.get("Problem"):
                        errors.append(f"{where} {status}: body is not the Problem schema")
                elif status == "default":
                    errors.append(f"{where}: a `default` response hides the real statuses")

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("format") == "uint64":
                errors.append(f"{where}: unsigned 64-bit integer")
            if (
                node.get("type") == "object"
                and not node.get("properties")
                and "additionalProperties" not in node
                and not any(k in node for k in ("allOf", "oneOf", "anyOf"))
            ):
                errors.append(f"{where}: untyped object")
            if node.get("type") == "object":
                example = node.get("example")
                for name, prop in node.get("properties", {}).items():
                    nullable = resolve(prop).get("nullable", False) or prop.get("nullable", False)
                    if isinstance(example, dict) and name in example and example[name] is None and not nullable:
                        errors.append(f"{where}: example sets non-nullable {name} to null")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(doc, "#")

    if operations == 0:
        errors.append("no operations")
    for error in errors:
        print(f"contract: {error}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} contract problem(s)", file=sys.stderr)
        return 1
    print(f"{path}: {operations} operations meet the contract checklist")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "openapi.json"))
