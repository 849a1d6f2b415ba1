"""mend: the command-line tool for agencies, coordinators and regional IT.

Credentials come from flags or the environment: MEND_API_KEY (a partner agency) or MEND_TOKEN
(staff). Targets: MEND_REFERRALS_GRPC (default 127.0.0.1:50051), MEND_CASES_GRPC (127.0.0.1:50052).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict

from .client import CasesClient, ReferralsClient


def _print(message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))


def _rpc_error(error: grpc.RpcError) -> int:
    print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
        status = rpc_status.from_call(error)
        for detail in status.details if status else []:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                for v in bad.field_violations:
                    print(f"  {v.field}: {v.description}", file=sys.stderr)
    except Exception:
        pass
    return 1


def _need(value: str | None, what: str) -> str:
    if not value:
        raise SystemExit(f"error: {what} is needed")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", default=os.environ.get("MEND_REFERRALS_GRPC", "127.0.0.1:50051"))
    parser.add_argument("--cases", default=os.environ.get("MEND_CASES_GRPC", "127.0.0.1:50052"))
    parser.add_argument("--api-key", default=os.environ.get("MEND_API_KEY"))
    parser.add_argument("--token", default=os.environ.get("MEND_TOKEN"))
    parser.add_argument("--timeout", type=float, default=10.0)
    sub = parser.add_subparsers(dest="area", required=True)

    token = sub.add_parser("token", help="staff tokens from the local issuer (development)").add_subparsers(dest="action", required=True)
    issue = token.add_parser("issue")
    issue.add_argument("--roles", required=True, help="comma-separated: coordinator,facilitator,manager,auditor,admin")
    issue.add_argument("--county", action="append", required=True, help="repeat for several counties")
    issue.add_argument("--subject", default="cli-user")
    issue.add_argument("--ttl", type=int, default=3600)
    issue.add_argument("--private-key", default=os.environ.get(
        "MEND_TOKEN_PRIVATE_KEY_FILE", str(Path(os.environ.get("MEND_VAR_DIR", "var")) / "token-signing.pem")))

    agency = sub.add_parser("agency", help="partner agencies and their API keys (admin)").add_subparsers(dest="action", required=True)
    add = agency.add_parser("add")
    add.add_argument("--name", required=True)
    add.add_argument("--county", required=True)
    add.add_argument("--kind", required=True, help="police, probation, prison, youth_offending_team, victim_support, court, housing, self_referral, other")
    lst = agency.add_parser("list")
    lst.add_argument("--county", default="")
    key = agency.add_parser("issue-key")
    key.add_argument("agency_id")
    key.add_argument("--label", default="")
    rev = agency.add_parser("revoke-key")
    rev.add_argument("key_id")

    referral = sub.add_parser("referral", help="submit referrals and follow them (partner agencies)").add_subparsers(dest="action", required=True)
    submit = referral.add_parser("submit")
    submit.add_argument("file", help="a JSON file shaped like the HTTP API's referral body")
    submit.add_argument("--request-id", help="idempotency key; the same one returns the same referral")
    status = referral.add_parser("status")
    status.add_argument("referral_id")
    referral.add_parser("list")

    cases = sub.add_parser("cases", help="case files (coordinators)").add_subparsers(dest="action", required=True)
    clist = cases.add_parser("list")
    clist.add_argument("--county", default="")
    clist.add_argument("--stage", default="")
    clist.add_argument("--page-size", type=int, default=50)
    show = cases.add_parser("show")
    show.add_argument("case_id")
    return parser


def run(args) -> int:
    if args.area == "token":
        from mend_common.auth import TokenIssuer
        issuer = TokenIssuer.from_file(Path(args.private_key))
        print(issuer.issue(args.subject, [r.strip() for r in args.roles.split(",") if r.strip()], args.county,
                           ttl_seconds=args.ttl))
        return 0
    if args.area == "agency":
        client = ReferralsClient(args.referrals, token=_need(args.token, "--token or MEND_TOKEN (admin)"), timeout=args.timeout)
        if args.action == "add":
            _print(client.create_agency(args.name, args.county, args.kind))
        elif args.action == "list":
            _print(client.list_agencies(args.county))
        elif args.action == "issue-key":
            issued = client.issue_key(args.agency_id, args.label)
            print(f"key id: {issued.key_id}\napi key (shown once, store it now): {issued.api_key}")
        else:
            print("revoked" if client.revoke_key(args.key_id) else "already revoked")
        return 0
    if args.area == "referral":
        client = ReferralsClient(args.referrals, api_key=args.api_key, token=args.token, timeout=args.timeout)
        if not (args.api_key or args.token):
            raise SystemExit("error: --api-key or MEND_API_KEY (or a staff --token for reading) is needed")
        if args.action == "submit":
            try:
                draft = json.loads(Path(args.file).read_text())
            except (OSError, ValueError) as exc:
                raise SystemExit(f"error: cannot read {args.file}: {exc}")
            try:
                _print(client.submit(draft, args.request_id))
            except ValueError as exc:
                raise SystemExit(f"error: {exc}")
        elif args.action == "status":
            _print(client.get(args.referral_id))
        else:
            _print(client.list())
        return 0
    client = CasesClient(args.cases, token=_need(args.token, "--token or MEND_TOKEN"), timeout=args.timeout)
    if args.action == "list":
        _print(client.list(args.county, args.stage, args.page_size))
    else:
        _print(client.get(args.case_id))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except grpc.RpcError as error:
        return _rpc_error(error)


if __name__ == "__main__":
    sys.exit(main())
