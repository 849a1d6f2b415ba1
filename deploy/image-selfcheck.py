"""Build-time check of the Mend image, run by deploy/Dockerfile in the builder stage.

Fails the build, not a pod, when the installed image could not run a Mend process: a console
script missing, gRPC stubs not importable, a service not registered, or a service's Alembic
migrations not where its definition says (installed packages must carry them).
"""
from __future__ import annotations

import importlib
import shutil
import sys

SERVICES = ("referrals", "cases")
COMMANDS = ("mend-api", "mend-worker", "mend-relay", "mend-migrate")
STUBS = ("mend.referrals.v1.referrals_pb2_grpc", "mend.cases.v1.cases_pb2_grpc")


def main() -> int:
    problems: list[str] = []
    for cmd in COMMANDS:
        if shutil.which(cmd) is None:
            problems.append(f"console script {cmd} is not installed (services/common)")
    for module in STUBS:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"gRPC stubs: cannot import {module}: {exc}")
    try:
        from mend_common.registry import load_definition
    except ImportError as exc:
        problems.append(f"mend_common is not importable: {exc}")
    else:
        seen: dict = {}
        for name in SERVICES:
            try:
                definition = load_definition(name)
            except (Exception, SystemExit) as exc:
                problems.append(f"service {name}: not registered: {exc}")
                continue
            if not (definition.migrations_dir / "env.py").is_file():
                problems.append(
                    f"service {name}: migrations not found at {definition.migrations_dir}; "
                    "mend-migrate would fail. Ship migrations/ inside the package (package data) "
                    "and point migrations_dir at it, so a non-editable install carries them."
                )
            elif definition.migrations_dir.resolve() in seen:
                problems.append(
                    f"service {name}: shares its migrations directory with "
                    f"{seen[definition.migrations_dir.resolve()]} ({definition.migrations_dir})"
                )
            seen.setdefault(definition.migrations_dir.resolve(), name)
    for problem in problems:
        print(f"image self-check: {problem}", file=sys.stderr)
    if not problems:
        print("image self-check passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
