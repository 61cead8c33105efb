"""``buildmatrix verify``: prove the repository and the artifacts agree with the matrix."""

from __future__ import annotations

import argparse
from pathlib import Path

from buildmatrix.cli import ui
from buildmatrix.cli.options import add_format, add_release, add_tls_verify
from buildmatrix.loader import load_matrix, select_releases
from buildmatrix.verify import Check, Report, VerifyOptions, verify

HELP = (
    "check that pins agree with the matrix everywhere: the meta package's extras, wheels, "
    "images, the image plan, the docs page and (with --check-index) the package index"
)

EPILOG = """\
examples:
  buildmatrix verify                                   the repository: extras, plan, docs
  buildmatrix verify --release v0.7.1 --wheel dist/    built wheels of one release
  buildmatrix verify --release v0.7.1 --wheel wheelhouse/
                                                       and its release record: every target
                                                       built, present and current
  buildmatrix verify --image oci-archive:vllm.tar      an image, never run
  buildmatrix verify --image localhost/dynamo/vllm-runtime:main-cuda12
  buildmatrix verify --image docker://127.0.0.1:5000/dynamo/vllm-runtime@sha256:...
                                                       straight from a registry, every platform
  buildmatrix verify --release v0.7.1 --check-index    every pin published, not yanked

exit codes: 0 every check holds (and checks ran), 1 a check failed or nothing was
checked (an empty folder, a wheel of another release), 2 bad input (an unreadable
wheel or image, an unknown release); the other checks are still reported."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_release(
        parser,
        purpose="check against this release",
        default="the release each artifact names (wheel version, image label), every release for the index",
    )
    _artifact_flags(parser)
    _index_flags(parser)
    add_format(parser)
    parser.add_argument(
        "--show-all",
        action="store_true",
        help="with --format table: list every check, not only those of subjects that fail",
    )


def _artifact_flags(parser: argparse.ArgumentParser) -> None:
    """What is checked: wheels, images (and how they are read), pyproject files."""
    parser.add_argument(
        "--wheel",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a built or downloaded wheel, or a folder of them (with a manifest.json: every "
        "target of the release recorded, present and current); the meta wheel's extras must "
        "equal what the matrix generates, per extra (repeatable)",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="REF",
        help="an image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, "
        "docker://HOST/REPO[:TAG][@DIGEST] (a registry), a path to one of those, or a name in "
        "local buildah storage; never run, every blob checked against its digest (repeatable)",
    )
    add_tls_verify(
        parser,
        help="with docker:// images: require HTTPS with a verified certificate (default: true; "
        "a registry on localhost or 127.0.0.0/8 is always spoken to over plain HTTP); "
        "--tls-verify=false also accepts plain HTTP, as skopeo does",
    )
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH",
        help="with --image: only this platform of a multi-arch image (default: every one)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="with --image: stop reading layers once the pins are found (skips the single-"
        "libnixl check, which needs every layer)",
    )
    parser.add_argument(
        "--pyproject",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="another pyproject.toml whose extras carry pins (repeatable); the meta packages "
        "the matrix names are always checked",
    )


def _index_flags(parser: argparse.ArgumentParser) -> None:
    """--check-index: every pin published on the package index, not yanked."""
    parser.add_argument(
        "--check-index",
        action="store_true",
        help="check that every pinned version exists on the package index and is not yanked",
    )
    parser.add_argument(
        "--index-url",
        metavar="URL",
        help="with --check-index: the simple index (default: pip's configuration, else PyPI)",
    )
    parser.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        metavar="URL",
        help="with --check-index: another index to consult, as pip does (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    releases = select_releases(matrix, args.release) if args.release else None
    options = VerifyOptions(
        releases=releases,
        wheels=tuple(args.wheel),
        images=tuple(args.image),
        pyprojects=tuple(args.pyproject),
        check_index=args.check_index,
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        platform=args.platform,
        quick=args.quick,
        tls_verify=args.tls_verify,
    )
    report = verify(matrix, options, on_step=lambda message: ui.stderr.print(message, markup=False))
    if args.format == "json":
        ui.emit_json(report.to_json())
    else:
        _print_table(report, show_all=args.show_all)
    return report.exit_code


def _print_table(report: Report, *, show_all: bool) -> None:
    """One table per subject; cells are escaped because requirements contain [extras]."""
    from rich.markup import escape

    subjects: dict[str, list[Check]] = {}
    for check in report.checks:
        subjects.setdefault(check.subject, []).append(check)
    for subject, checks in subjects.items():
        failed = sum(not check.ok for check in checks)
        if not failed and not show_all:
            holds = "1 check holds" if len(checks) == 1 else f"{len(checks)} checks hold"
            ui.stdout.print(f"ok  {subject}: {holds}", markup=False)
            continue
        rows = [
            [
                "ok" if check.ok else "[bold red]FAIL[/]",
                escape(check.name),
                escape(check.expected),
                escape(check.found),
                escape(check.detail),
            ]
            for check in checks
        ]
        title = f"{escape(subject)}: {len(checks)} checks, {failed} failed"
        ui.stdout.print(ui.table(title, ["", "name", "expected", "found", "detail"], rows))
    for note in report.notes:
        ui.stdout.print(f"note: {note}", markup=False)
    for error in report.errors:
        ui.stderr.print(f"error: {error}", markup=False)
    counted = f"{len(report.checks)} checks, {report.artifacts} artifacts"
    if report.nothing_checked:
        verdict = "nothing was checked: FAIL"
    elif report.exit_code == 0:
        verdict = f"all checks hold ({counted})"
    else:
        verdict = f"{len(report.failed)} of {len(report.checks)} checks failed ({report.artifacts} artifacts)"
        verdict += f", {len(report.errors)} inputs unreadable" if report.errors else ""
    ui.stdout.print(f"verify: {verdict}", markup=False)
