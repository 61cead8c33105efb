"""Audit wheels' glibc tags: auditwheel's verdict, hermetic, at the speed of reading the zip.

``buildmatrix.audit.gate`` audits each wheel and holds it to its tag and policy;
``buildmatrix.audit.wheelscan`` and ``buildmatrix.audit.elf`` stream its ELF members
out of the zip; ``buildmatrix.audit.abi`` gives auditwheel's ``sym_tag`` and
``overall_tag``.
"""

from __future__ import annotations

from buildmatrix.audit.gate import (
    VIOLATION_KINDS,
    ElfFile,
    Violation,
    WheelAudit,
    audit_wheel,
    audit_wheels,
    check_policy_name,
    find_wheels,
    known_policies,
    printable,
)

__all__ = [
    "VIOLATION_KINDS",
    "ElfFile",
    "Violation",
    "WheelAudit",
    "audit_wheel",
    "audit_wheels",
    "check_policy_name",
    "find_wheels",
    "known_policies",
    "printable",
]
