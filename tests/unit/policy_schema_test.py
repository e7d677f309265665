#!/usr/bin/python3
"""Validates the example config and policies (and the good test fixtures)
against policies/config.schema.json and policies/policy.schema.json.

usage: policy_schema_test.py POLICIES_DIR GOOD_FIXTURES_DIR
"""
import json
import pathlib
import sys

import jsonschema
import yaml


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        if path.suffix == ".json":  # PyYAML rejects tabs, which JSON allows
            return [json.load(f)]
        return [d for d in yaml.safe_load_all(f) if d is not None]


def main():
    policies_dir = pathlib.Path(sys.argv[1])
    fixtures = pathlib.Path(sys.argv[2])
    cls = jsonschema.Draft202012Validator
    schemas = {}
    for name in ("config", "policy"):
        schema = json.loads((policies_dir / f"{name}.schema.json").read_text())
        cls.check_schema(schema)
        schemas[name] = cls(schema)

    configs = [policies_dir / "keyrotd.example.yaml"] + sorted(
        p for p in fixtures.glob("*") if p.name.startswith("keyrotd") or p.name == "minimal.yaml")
    policies = sorted(p for p in policies_dir.glob("*.yaml") if p.name != "keyrotd.example.yaml")
    policies += sorted(fixtures.glob("policies.d/[!.]*.y*ml"))
    policies += sorted(fixtures.glob("policies.d/[!.]*.json"))
    policies += [fixtures / "policies.json", fixtures / "single-policy.yaml"]

    if len(policies) < 4 + 5:
        print(f"too few policy files found: {policies}")
        return 1
    failures = 0
    checked = 0
    for kind, files in (("config", configs), ("policy", policies)):
        for path in files:
            docs = load_docs(path)
            if not docs:
                print(f"FAIL {path}: no documents")
                failures += 1
            for doc in docs:
                checked += 1
                for err in schemas[kind].iter_errors(doc):
                    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                    print(f"FAIL {path}: {where}: {err.message}")
                    failures += 1

    # The schema must also reject what the loader rejects, for a few basics.
    bad = [
        ("policy", {"name": "x"}),  # no organization
        ("policy", {"name": "x", "organization": "o", "rotation": {"keyLifeTime": "1d"}}),
        ("policy", {"name": "x", "organization": "o", "rotation": {"overlap": "90 days"}}),
        ("policy", {"name": "x", "organization": "o", "rotation": {"method": "create"}}),
        ("policy", {"name": "x", "organization": "o",
                    "rotation": {"window": {"timezone": "Europe//Berlin"}}}),
        ("config", {"polices": "x"}),
        ("config", {"apigee": {"auth": {"method": "token-file"}}}),
        ("config", {"apigee": {"maxConcurrency": 0}}),
        ("config", {"log": {"format": "xml"}}),
    ]
    for kind, doc in bad:
        if schemas[kind].is_valid(doc):
            print(f"FAIL {kind} schema accepts {doc}")
            failures += 1

    print(f"{checked} documents checked, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
