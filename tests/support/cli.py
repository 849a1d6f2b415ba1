"""Running the mend CLI in-process against a live region, as a member of staff."""
from __future__ import annotations

from mend_cli.main import main


class StaffCli:
    """`mend --<service> TARGET --token T <command> ...`, returning (exit code, out, err)."""

    def __init__(self, tenant, capsys, service: str, command: str, *roles: str, subject: str = "coord-cli"):
        self.prefix = [f"--{service}", tenant.stack.grpc_target(service),
                       "--token", tenant.staff_token(*(roles or ("coordinator",)), subject=subject),
                       "--timeout", "20", command]
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*self.prefix, *argv])
        captured = self.capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        return code, captured.out, captured.err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out
