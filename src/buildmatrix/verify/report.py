"""What verify reports: one ``Check`` per comparison, gathered into a ``Report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "Collector", "Report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    subject: str  # the file or artifact checked
    name: str  # canonical distribution name (or the label/key checked)
    expected: str
    found: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "name": self.name,
            "expected": self.expected,
            "found": self.found,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    checks: tuple[Check, ...] = ()
    errors: tuple[str, ...] = ()  # unreadable input: exit 2 after reporting the rest
    notes: tuple[str, ...] = ()  # what was skipped, and why
    artifacts: int = 0  # wheels, images and release records given to check

    @property
    def nothing_checked(self) -> bool:
        return not self.checks

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if self.failed or self.nothing_checked else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [check.to_json() for check in self.checks],
            "errors": list(self.errors),
            "notes": list(self.notes),
            "summary": {
                "artifacts": self.artifacts,
                "checks": len(self.checks),
                "failed": len(self.failed),
                "errors": len(self.errors),
                "ok": self.exit_code == 0,
            },
        }


@dataclass(slots=True)
class Collector:
    """Checks and input errors gathered while verifying."""

    checks: list[Check] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why

    def add(self, *checks: Check) -> None:
        self.checks.extend(checks)
