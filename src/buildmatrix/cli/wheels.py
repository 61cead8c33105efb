"""``buildmatrix wheels``: build, audit and publish the matrix's wheels."""

from __future__ import annotations

import argparse
from pathlib import Path

from buildmatrix._call import format_command
from buildmatrix._paths import output_dir
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_dry_run, add_format, add_out, add_release
from buildmatrix.errors import UsageError
from buildmatrix.loader import load_matrix, select_releases
from buildmatrix.wheels import BACKENDS, Report, Status, WheelsRequest, run_wheels
from buildmatrix.wheels.buildinfo import BUILD_FILE
from buildmatrix.wheels.outputs import MANIFEST

HELP = "build the matrix's wheels (cibuildwheel or local), audit them, publish with a manifest"


EPILOG = (
    "Each package is built from a staged copy of its source holding "
    ".buildmatrix/build.json (the release's version; for the meta package also its "
    "runtime requirement and framework extras, generated from the matrix's pins). "
    "Exit codes: 0 every buildable target built or unchanged (targets this host cannot "
    "build are listed with what would build them); 1 a target failed or was rejected "
    "(after the others ran); 2 bad input, or nothing selected can be built here."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_release(parser, purpose="the release to build", default="the matrix's first, main")
    parser.add_argument(
        "--package", action="append", metavar="P", help="only this wheel package (repeatable)"
    )
    parser.add_argument(
        "--arch",
        metavar="A",
        help="only this arch; with --backend cibuildwheel a foreign arch is built under QEMU",
    )
    parser.add_argument("--python", metavar="X.Y", help="only targets for this Python")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="cibuildwheel (in manylinux containers), local (host compiler, no container); "
        "auto: cibuildwheel when docker or podman answers, else local (default: auto)",
    )
    add_out(
        parser,
        metavar="DIR",
        help="output folder: wheels, manifest.json, logs/, rejected/ (default: wheelhouse/ "
        "beside the matrix file, where `buildmatrix images` looks for them)",
    )
    add_dry_run(parser, help="print the commands, environment and build selectors without running anything")
    parser.add_argument("--force", action="store_true", help="rebuild targets whose inputs are unchanged")
    parser.add_argument(
        "--require-all",
        action="store_true",
        help="exit 1 unless every selected target is built (or unchanged since it was built): a "
        "target this host cannot build fails the run (what CI runs)",
    )
    add_format(parser, help="summary format")


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    request = WheelsRequest(
        matrix=matrix,
        releases=select_releases(matrix, args.release) if args.release else matrix.releases[:1],
        packages=tuple(args.package or ()),
        arch=args.arch,
        python=args.python,
        backend=args.backend,
        out=_output_folder(args.out if args.out is not None else matrix.wheelhouse, dry_run=args.dry_run),
        dry_run=args.dry_run,
        force=args.force,
    )
    report = run_wheels(request, ui.SCREEN)
    if args.format == "json":
        ui.emit_json(report.to_json())
    elif report.dry_run:
        _print_dry_run(report)
    else:
        _print_summary(report)
    if report.failed:
        return 1
    if args.require_all and not report.dry_run:
        missing = [r for r in report.results if r.status not in (Status.BUILT, Status.UNCHANGED)]
        for result in missing:
            ui.stderr.print(
                f"--require-all: {result.target.id} is {result.status}: {result.message}",
                markup=False,
                soft_wrap=True,
            )
        return 1 if missing else 0
    return 0


def _output_folder(path: Path, *, dry_run: bool) -> Path:
    """--out checked before any build: a writable folder whose fixed entries have the right kind."""
    out = output_dir(path, "--out", create=not dry_run)
    for name, folder in ((MANIFEST, False), ("logs", True), ("rejected", True)):
        entry = out / name
        if entry.exists() and entry.is_dir() != folder:
            kind = "a folder" if folder else "a file"
            msg = f"--out {out}: {entry} must be {kind}; move it away"
            raise UsageError(msg)
    return out


def _print_dry_run(report: Report) -> None:
    """Each job as shell lines that run as printed: stage, write build.json, build, repair."""
    from buildmatrix.wheels.runner import DRY_RUN_WORK

    out = ui.stdout
    for note in report.notes:
        out.print(f"# note: {note}", markup=False, soft_wrap=True)
    work = format_command([str(DRY_RUN_WORK)])
    out.print(
        f"# backend: {report.backend}. The commands below run as printed in a POSIX shell, in the "
        f"work folder {work}\n# (a real run uses a fresh folder inside --out and removes it).\n"
        f"rm -rf {work} && mkdir -p {work}",
        markup=False,
        soft_wrap=True,
    )
    shown: set[str] = set()
    for result in report.results:
        target = result.target
        if result.status is not Status.PLANNED or result.job is None:
            out.print(f"\n# {target.id}: {result.status}: {result.message}", markup=False, soft_wrap=True)
            continue
        job = result.job
        if job.slug in shown:
            out.print(f"\n# {target.id}: built by the call above ({job.slug})", markup=False)
            continue
        shown.add(job.slug)
        out.print(f"\n# {', '.join(t.id for t in job.targets)}  [{job.backend}]", markup=False)
        if job.note:
            out.print(f"# note: {job.note}", markup=False)
        assert result.info is not None
        for line in _stage_lines(job.package.source, job.source_dir, report.out, result.info.text()):
            out.print(line, markup=False, soft_wrap=True)
        for command in (*job.commands, *job.tests):
            lines = command.describe()
            # A subshell: the `cd` and `export` lines stay with their command.
            out.print("(\n" + "\n".join(f"  {line}" for line in lines) + "\n)", markup=False, soft_wrap=True)
        out.print(
            f"# then buildmatrix audits each wheel and publishes it to {report.out}/ "
            f"or keeps it in {report.out}/rejected/",
            markup=False,
            soft_wrap=True,
        )


def _stage_lines(source: Path, destination: Path, out: Path, build_json: str) -> list[str]:
    """Copy the package's file set (git's, when it is tracked) and write its build.json."""
    from buildmatrix.wheels.sources import read_source_tree

    tree = read_source_tree(source, exclude=(out,))
    build_file = destination / BUILD_FILE
    return [
        f"mkdir -p {format_command([str(destination)])}",
        f"(cd {format_command([str(source)])} && cp --parents -p -t "
        f"{format_command([str(destination)])} -- {format_command(tree.files)})",
        f"mkdir -p {format_command([str(build_file.parent)])}",
        f"cat > {format_command([str(build_file)])} <<'BUILDMATRIX_EOF'",
        *build_json.rstrip("\n").splitlines(),
        "BUILDMATRIX_EOF",
    ]


def _print_summary(report: Report) -> None:
    err = ui.stderr  # the backend's note was printed before the builds
    rows = [
        [
            result.target.id,
            str(result.status),
            result.wheel,
            result.audit,
            f"{result.seconds:.1f}s" if result.seconds else "",
        ]
        for result in report.results
    ]
    err.print(
        ui.table(
            f"wheels ({report.backend} backend) -> {report.out}",
            ["target", "status", "wheel", "audit", "time"],
            rows,
        )
    )
    counts: dict[str, int] = {}
    for result in report.results:
        counts[str(result.status)] = counts.get(str(result.status), 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    err.print(f"{summary}; manifest: {report.out / 'manifest.json'}", markup=False, soft_wrap=True)
    for result in report.results:
        if result.status is Status.UNBUILDABLE:
            err.print(
                f"not buildable here: {result.target.id}: {result.message}",
                markup=False,
                soft_wrap=True,
            )
    for result in report.failed:
        err.print(
            f"{'FAILED' if result.status is Status.FAILED else 'REJECTED'} {result.target.id}: "
            f"{result.message.removesuffix(' (see the log)')} (log: {result.log})",
            markup=False,
            soft_wrap=True,
        )
        if result.status is Status.FAILED and result.log is not None:
            tail = log_tail(result.log)
            if tail:
                err.print(f"  last lines of {result.log}:", markup=False, soft_wrap=True)
                for line in tail:
                    err.print(f"  | {line}", markup=False, soft_wrap=True)


LOG_TAIL_LINES = 25


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a build log: the compiler's or auditwheel's complaint is there."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
