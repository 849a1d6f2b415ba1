"""Build-time check of the Mend image, run by deploy/Dockerfile in the builder stage.

Fails the build, not a pod, when the installed image could not run a Mend process: a console
script missing, gRPC stubs not importable, a service not registered, a service's Alembic
migrations not where its definition says, or a package's run-time data files (the risk rules)
not installed (installed packages must carry them).
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

SERVICES = ("referrals", "cases", "risk", "notifications", "scheduling")
COMMANDS = ("mend-api", "mend-worker", "mend-relay", "mend-migrate")
STUBS = (
    "mend.referrals.v1.referrals_pb2_grpc",
    "mend.cases.v1.cases_pb2_grpc",
    "mend.risk.v1.risk_pb2_grpc",
    "mend.notifications.v1.notifications_pb2_grpc",
    "mend.scheduling.v1.scheduling_pb2_grpc",
)
# Data files a package reads at run time (setuptools package-data): package -> glob patterns.
# (mend_notifications and mend_scheduling ship no data files; their migrations are checked below like
# every service's.)
PACKAGE_DATA = {"mend_risk": ("domain/rules/*.json",)}


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
    for package, patterns in PACKAGE_DATA.items():
        try:
            spec = importlib.util.find_spec(package)
        except ImportError as exc:
            problems.append(f"package {package} is not importable: {exc}")
            continue
        if spec is None or not spec.submodule_search_locations:
            problems.append(f"package {package} is not installed")
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for pattern in patterns:
            if not any(root.glob(pattern)):
                problems.append(
                    f"package {package}: no {pattern} in {root}; add it to the package-data "
                    "in its pyproject.toml so a non-editable install carries it"
                )
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
            elif not any((definition.migrations_dir / "versions").glob("*.py")):
                problems.append(
                    f"service {name}: no revisions in {definition.migrations_dir / 'versions'}; "
                    "mend-migrate would create nothing. Add migrations/versions/*.py to the "
                    "package-data in its pyproject.toml."
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
