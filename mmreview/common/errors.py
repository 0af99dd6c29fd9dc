"""Errors the CLI turns into one line and a documented exit code.

Exit codes (README): 0 clean, 1 findings/regressions/did-not-apply,
2 bad input or usage, 3 infrastructure (toolchain missing, disk full).
"""

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INFRA = 3


class MmreviewError(Exception):
    """An error with a one-line message meant for the user."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, subject: str, reason: str):
        # `subject` names the input (a path, a rev, a patch), `reason` says why.
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason


class BadInput(MmreviewError):
    exit_code = EXIT_BAD_INPUT


class InfraError(MmreviewError):
    exit_code = EXIT_INFRA
