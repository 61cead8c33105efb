"""The wheels job from start to end: select, plan, skip what is unchanged, build, audit, publish.

Each step is a small function over the previous step's result. A failing job
is recorded and the run goes on; the caller turns the results into a summary
and the exit code (1 when any target failed or was rejected).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from buildmatrix import __version__, _call
from buildmatrix.errors import BuildMatrixError, UsageError, check_choice
from buildmatrix.expand import TargetKind, WheelTarget, expand
from buildmatrix.model import Matrix, Release, WheelKind, WheelPackage
from buildmatrix.progress import SILENT, Reporter, Steps
from buildmatrix.wheels.buildinfo import BUILD_FILE, BuildInfo, build_info, metadata_problems
from buildmatrix.wheels.cibw import CibuildwheelBackend
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.jobs import Job, Unbuildable
from buildmatrix.wheels.local import LocalBackend
from buildmatrix.wheels.outputs import OutputFolder, sha256_of
from buildmatrix.wheels.sources import SourceTree, read_source_tree

__all__ = [
    "BACKENDS",
    "Report",
    "Status",
    "TargetResult",
    "WheelsRequest",
    "expected_tag",
    "input_hash",
    "plan_jobs",
    "run_record",
    "run_wheels",
    "select_targets",
    "target_inputs",
]

BACKENDS = ("auto", "cibuildwheel", "local")
# --dry-run prints commands that run as printed, so their work folder is a real path.
DRY_RUN_WORK = Path(tempfile.gettempdir()) / "buildmatrix-dry-run"
INPUT_HASH_FORMAT = 3  # bump when the key's recipe changes: every target rebuilds once (2: inputs, 3: tests)


class Status(enum.StrEnum):
    BUILT = "built"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    FAILED = "failed"
    UNBUILDABLE = "not buildable here"
    PLANNED = "would build"

    @property
    def failed(self) -> bool:
        return self in (Status.FAILED, Status.REJECTED)


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelsRequest:
    matrix: Matrix
    releases: tuple[Release, ...]
    packages: tuple[str, ...] = ()  # empty: every wheel package
    arch: str | None = None
    python: str | None = None
    backend: str = "auto"
    out: Path = Path("wheelhouse")
    dry_run: bool = False
    force: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetResult:
    target: WheelTarget
    status: Status
    backend: str = ""
    wheel: str = ""  # file name (in the output folder, or in rejected/)
    audit: str = ""  # "ok", or what failed
    seconds: float = 0.0
    log: Path | None = None
    message: str = ""  # why it failed / cannot be built / was rejected
    job: Job | None = None  # dry runs: what would run
    info: BuildInfo | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "target": self.target.id,
            "status": str(self.status),
            "backend": self.backend,
            "wheel": self.wheel or None,
            "audit": self.audit or None,
            "seconds": round(self.seconds, 3),
            "log": None if self.log is None else str(self.log),
            "message": self.message or None,
        }
        if self.job is not None:
            data["commands"] = [c.to_json() for c in self.job.commands]
            data["tests"] = [c.to_json() for c in self.job.tests]
            data["note"] = self.job.note or None
        if self.info is not None and self.status is Status.PLANNED:
            data["build_info"] = self.info.to_json()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    out: Path
    backend: str
    results: tuple[TargetResult, ...]
    dry_run: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[TargetResult, ...]:
        return tuple(r for r in self.results if r.status.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "backend": self.backend,
            "dry_run": self.dry_run,
            "manifest": None if self.dry_run else str(self.out / "manifest.json"),
            "notes": list(self.notes),
            "results": [r.to_json() for r in self.results],
        }


# -- selection and planning --------------------------------------------------------------


def select_targets(request: WheelsRequest) -> tuple[WheelTarget, ...]:
    matrix = request.matrix
    known = [str(w.name) for w in matrix.wheels]
    for name in request.packages:
        if name not in known:
            check_choice("wheel package", name, known)
    if request.arch is not None:
        check_choice("arch", request.arch, [a.name for a in matrix.archs])
    plan = expand(
        matrix,
        releases=request.releases,
        kind=TargetKind.WHEEL,
        arch=request.arch,
        python=request.python,
    )
    chosen = tuple(t for t in plan.wheels() if not request.packages or t.package.name in request.packages)
    if not chosen:
        dropped = [
            f"{e.target.id} (rule {e.rule.id})"
            for e in plan.excluded
            if not request.packages
            or (isinstance(e.target, WheelTarget) and e.target.package.name in request.packages)
        ]
        msg = "no wheel target matches the selection"
        if request.python is not None:
            msg += (
                f" (--python {request.python}: abi3 and pure packages are built once, for "
                "their lowest Python)"
            )
        if dropped:
            msg += "; excluded by the matrix's rules: " + ", ".join(dropped)
        raise UsageError(msg)
    return chosen


def _backend(request: WheelsRequest, host: Host) -> tuple[LocalBackend | CibuildwheelBackend, str]:
    """The backend to use and, when it matters, a note on why."""
    if request.backend == "local":
        return LocalBackend(host), ""
    engine = host.engine
    if request.backend == "auto" and engine is None:
        return LocalBackend(host), (
            "no container engine answers (`docker info`, `podman info`): using the local backend"
        )
    note = ""
    if engine is None:
        if not request.dry_run:
            msg = (
                "--backend cibuildwheel needs a container engine: neither `docker info` nor "
                "`podman info` succeeded (start the daemon, or use --backend local)"
            )
            raise UsageError(msg)
        engine, note = "docker", "no container engine answers: showing the docker options"
    emulate = request.arch is not None
    return CibuildwheelBackend(request.matrix, host, engine=engine, emulate=emulate), note


def plan_jobs(
    backend: LocalBackend | CibuildwheelBackend, targets: Sequence[WheelTarget], work_root: Path
) -> list[Job | Unbuildable]:
    if isinstance(backend, CibuildwheelBackend):
        return backend.plan_all(targets, work_root)
    return [backend.plan(target, work_root) for target in targets]


def expected_tag(target: WheelTarget) -> Tag:
    """The one tag the target's wheel must carry: ``cp310-abi3-manylinux_2_28_x86_64``."""
    if target.package.kind is WheelKind.PURE:
        return Tag("py3", "none", "any")
    interpreter = "cp" + target.python.replace(".", "")
    abi = "abi3" if target.package.abi3 else interpreter
    return Tag(interpreter, abi, target.platform_tag)


def input_hash(job: Job, target: WheelTarget, source: SourceTree, info: BuildInfo) -> str:
    """What decides the wheel: source content, matrix entry, generated metadata, tools."""
    package = target.package
    key = {
        "format": INPUT_HASH_FORMAT,
        "toolkit": __version__,
        "tools": dict(job.tools),
        "target": target.to_json(),
        "package": {
            "kind": str(package.kind),
            "abi3": package.abi3,
            "policy": package.policy,
            "external_libs": list(package.external_libs),
        },
        "build_info": info.to_json(),
        "source": source.digest,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def target_inputs(target: WheelTarget, source: SourceTree, info: BuildInfo) -> dict[str, str]:
    """The inputs verify can recompute without a backend: a wheel is stale when one changed."""
    return {
        "source": source.digest,
        "build_info": hashlib.sha256(info.text().encode()).hexdigest(),
        "target": hashlib.sha256(json.dumps(target.to_json(), sort_keys=True).encode()).hexdigest(),
    }


def run_record(
    request: WheelsRequest, targets: Sequence[WheelTarget], results: Sequence[TargetResult]
) -> dict[str, Any]:
    """The manifest's ``run`` section: what was asked, and what became of every target."""
    by_id = {r.target.id: r for r in results}
    rows = []
    for target in targets:
        result = by_id.get(target.id)
        status = Status.FAILED if result is None else result.status
        rows.append(
            {
                "target": target.id,
                "package": str(target.package.name),
                "release": target.release.name,
                "status": str(status),
                "wheel": None if result is None else result.wheel or None,
                "reason": "no result" if result is None else result.message or None,
            }
        )
    statuses = {row["status"] for row in rows}
    if statuses <= {str(Status.BUILT), str(Status.UNCHANGED)}:
        overall = "complete"
    elif statuses & {str(Status.FAILED), str(Status.REJECTED)}:
        overall = "failed"
    else:
        overall = "incomplete"
    matrix_file = request.matrix.path
    return {
        "releases": [r.name for r in request.releases],
        "matrix": {"path": str(matrix_file), "sha256": sha256_of(matrix_file)},
        "selection": {
            "packages": list(request.packages),
            "arch": request.arch,
            "python": request.python,
        },
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "status": overall,
        "targets": rows,
    }


# -- running ---------------------------------------------------------------------------------


def run_wheels(request: WheelsRequest, reporter: Reporter = SILENT) -> Report:
    targets = select_targets(request)
    host = Host()
    backend, note = _backend(request, host)
    run = _Run(request, OutputFolder(request.out))
    _prefetch(host, run, targets, local=isinstance(backend, LocalBackend))
    if request.dry_run:
        planned = plan_jobs(backend, targets, DRY_RUN_WORK)
        results = [result for item in planned for result in run.dry_run(item)]
    else:
        if note:  # before the builds it explains
            reporter.note(f"note: {note}")
        with (
            run.out.locked(on_wait=reporter.note),
            run.out.work_folder() as work,
            _call.echo_alias(work, "$WORK"),
            reporter.steps("wheels", len(targets)) as bar,
        ):
            bar.note(f"$WORK is {work} (removed at the end of the run)")
            planned = plan_jobs(backend, targets, work)
            if not any(isinstance(item, Job) for item in planned):
                reasons = "; ".join(
                    f"{item.target.id}: {item.reason}" for item in planned if isinstance(item, Unbuildable)
                )
                msg = f"nothing in the selection can be built on this host: {reasons}"
                raise UsageError(msg)
            results = []
            for item in planned:
                for result in run.execute(item, backend.name, bar):
                    if result.status.failed:
                        # The published wheel was built from other inputs: never leave it out.
                        run.out.withdraw(result.target.id, f"rebuild {result.status}: {result.message}")
                    results.append(result)
                    bar.advance(f"{result.target.id}: {result.status}")
            run.out.record_run(run_record(request, targets, results))
    order = {t.id: i for i, t in enumerate(targets)}
    return Report(
        out=request.out,
        backend=backend.name,
        results=tuple(sorted(results, key=lambda r: order[r.target.id])),
        dry_run=request.dry_run,
        notes=(note,) if note else (),
    )


def _prefetch(host: Host, run: _Run, targets: Sequence[WheelTarget], *, local: bool) -> None:
    """Run the slow probes side by side rather than one after the other.

    Each is a subprocess (an interpreter found on PATH, which through a pyenv
    shim takes a quarter second; the compiler; git for each source), so a rerun
    with nothing to build costs about the slowest of them, not their sum.
    """
    packages = {t.package.source: t.package for t in targets}
    versions = {
        t.python
        for t in targets
        if local
        and t.package.kind is WheelKind.NATIVE
        and t.arch.name == host.arch
        and t.python != host.python.version
    }
    native = local and any(p.kind is WheelKind.NATIVE for p in packages.values())
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures: list[Future[object]] = [
            pool.submit(run.read_source, package) for package in packages.values()
        ]
        futures += [pool.submit(host.interpreter, version) for version in sorted(versions)]
        if native:
            futures.append(pool.submit(lambda: host.compiler))
        for future in futures:
            future.result()  # re-raise a bad source folder here, in the caller's thread


class _Run:
    """One run's state: the request, the output folder and what was read once."""

    def __init__(self, request: WheelsRequest, out: OutputFolder) -> None:
        self.request = request
        self.out = out
        self._sources: dict[Path, SourceTree] = {}
        self._infos: dict[tuple[str, str], BuildInfo] = {}

    def source_of(self, job: Job) -> SourceTree:
        return self.read_source(job.package)

    def read_source(self, package: WheelPackage) -> SourceTree:
        root = package.source
        if root not in self._sources:
            base = self.request.matrix.root.resolve()
            label = root.relative_to(base).as_posix() if root.is_relative_to(base) else str(root)
            self._sources[root] = read_source_tree(root, label=label, exclude=(self.out.root,))
        return self._sources[root]

    def info_of(self, job: Job) -> BuildInfo:
        key = (str(job.package.name), job.release.name)
        if key not in self._infos:
            self._infos[key] = build_info(self.request.matrix, job.package, job.release)
        return self._infos[key]

    def unchanged(self, job: Job, target: WheelTarget) -> Mapping[str, Any] | None:
        if self.request.force:
            return None
        return self.out.unchanged(target.id, self.key(job, target))

    def key(self, job: Job, target: WheelTarget) -> str:
        return input_hash(job, target, self.source_of(job), self.info_of(job))

    def dry_run(self, item: Job | Unbuildable) -> Iterator[TargetResult]:
        if isinstance(item, Unbuildable):
            yield TargetResult(target=item.target, status=Status.UNBUILDABLE, message=item.reason)
            return
        for target in item.targets:
            entry = self.unchanged(item, target)
            if entry is not None:
                yield TargetResult(
                    target=target,
                    status=Status.UNCHANGED,
                    backend=item.backend,
                    wheel=str(entry["filename"]),
                    message="inputs unchanged; --force rebuilds",
                )
            else:
                yield TargetResult(
                    target=target,
                    status=Status.PLANNED,
                    backend=item.backend,
                    job=item,
                    info=self.info_of(item),
                )

    def execute(self, item: Job | Unbuildable, backend: str, bar: Steps) -> Iterator[TargetResult]:
        if isinstance(item, Unbuildable):
            yield TargetResult(
                target=item.target, status=Status.UNBUILDABLE, backend=backend, message=item.reason
            )
            return
        job = item
        todo = []
        for target in job.targets:
            entry = self.unchanged(job, target)
            if entry is None:
                todo.append(target)
                continue
            yield TargetResult(
                target=target,
                status=Status.UNCHANGED,
                backend=job.backend,
                wheel=str(entry["filename"]),
                log=self.out.log_path(job.slug),
            )
        if not todo:
            return
        if len(todo) < len(job.targets):  # rebuild only what changed (one cibuildwheel call)
            job = _narrowed(job, todo)
        yield from self._build_and_gate(job, todo, bar)

    def _build_and_gate(self, job: Job, todo: list[WheelTarget], bar: Steps) -> Iterator[TargetResult]:
        log_path = self.out.log_path(job.slug)
        bar.note(f"building {', '.join(t.id for t in todo)} ({job.backend}); log: {log_path}")
        started = time.monotonic()
        try:
            with log_path.open("w", encoding="utf-8") as log:
                wheels = _build(job, self.source_of(job), self.info_of(job), log)
        except (BuildMatrixError, OSError) as error:
            message = error.message if isinstance(error, BuildMatrixError) else str(error)
            for target in todo:
                yield TargetResult(
                    target=target,
                    status=Status.FAILED,
                    backend=job.backend,
                    seconds=time.monotonic() - started,
                    log=log_path,
                    message=_first_line(message),
                )
            return
        elapsed = time.monotonic() - started
        by_tags = {frozenset(parse_wheel_filename(w.name)[3]): w for w in wheels}
        for target in todo:
            wheel = by_tags.pop(frozenset({expected_tag(target)}), None)
            if wheel is None:
                produced = ", ".join(w.name for w in wheels) or "no wheel"
                yield TargetResult(
                    target=target,
                    status=Status.FAILED,
                    backend=job.backend,
                    seconds=elapsed,
                    log=log_path,
                    message=f"expected a wheel tagged {expected_tag(target)}; got {produced}",
                )
                continue
            status, name, audit, message = self.gate(job, target, wheel)
            yield TargetResult(
                target=target,
                status=status,
                backend=job.backend,
                wheel=name,
                audit=audit,
                seconds=elapsed,
                log=log_path,
                message=message,
            )

    def gate(self, job: Job, target: WheelTarget, wheel: Path) -> tuple[Status, str, str, str]:
        """Check the wheel's metadata and audit it; publish it or keep it aside.

        Returns the status, the wheel's name (``rejected/...`` when kept aside),
        the audit verdict and, for a rejection, why.
        """
        try:
            problems = metadata_problems(wheel, self.info_of(job))
        except BuildMatrixError as error:
            problems = [f"cannot read the wheel's metadata: {error.message}"]
        audit = _audit(wheel, target)
        if audit.ok and not problems:
            self.out.publish(wheel, self.manifest_entry(job, target, wheel, audit.report))
            return Status.BUILT, wheel.name, "ok", ""
        reasons = [*problems, *audit.problems]
        report = {"target": target.id, "wheel": wheel.name, "problems": reasons, "audit": audit.report}
        kept = self.out.reject(wheel, report)
        verdict = "; ".join(audit.problems) or "ok"
        return Status.REJECTED, f"rejected/{kept.name}", verdict, "; ".join(reasons)

    def manifest_entry(
        self, job: Job, target: WheelTarget, wheel: Path, audit: dict[str, Any] | None
    ) -> dict[str, Any]:
        _, version, _, tags = parse_wheel_filename(wheel.name)
        source = self.source_of(job)
        return {
            "target": target.id,
            "package": str(job.package.name),
            "release": target.release.name,
            "version": str(version),
            "arch": target.arch.name,
            "python": target.python,
            "filename": wheel.name,
            "sha256": sha256_of(wheel),
            "size": wheel.stat().st_size,
            "tags": sorted(str(t) for t in tags),
            "audit": {"ok": True, "report": audit},
            "backend": job.backend,
            "tools": {"buildmatrix": __version__, **job.tools},
            "source": {"path": source.label, "digest": source.digest, **source.provenance.to_json()},
            "input_hash": self.key(job, target),
            "inputs": target_inputs(target, source, self.info_of(job)),
            "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }


def _narrowed(job: Job, targets: list[WheelTarget]) -> Job:
    """The same job for fewer targets (cibuildwheel: fewer build identifiers)."""
    identifiers = " ".join(t.build_identifier for t in targets)
    commands = tuple(
        replace(command, env={**command.env, "CIBW_BUILD": identifiers})
        if "CIBW_BUILD" in command.env
        else command
        for command in job.commands
    )
    return replace(job, targets=tuple(targets), commands=commands)


def _build(job: Job, source: SourceTree, info: BuildInfo, log: IO[str]) -> list[Path]:
    """Stage the source, write the build file, run the commands; the wheels it left."""
    print(f"# buildmatrix {__version__}: {', '.join(t.id for t in job.targets)}", file=log)
    print(f"# source {source.root} ({len(source.files)} files, sha256 {source.digest})", file=log)
    source.stage(job.source_dir)
    build_file = job.source_dir / BUILD_FILE
    build_file.parent.mkdir(parents=True, exist_ok=True)
    build_file.write_text(info.text(), encoding="utf-8")
    print(f"# wrote {BUILD_FILE.as_posix()}:\n{info.text()}", file=log, flush=True)
    base_env = {}
    if source.provenance.commit_time is not None:
        base_env["SOURCE_DATE_EPOCH"] = str(source.provenance.commit_time)
    for command in (*job.commands, *job.tests):
        wheel = None
        if command.wheel_from is not None:
            built = sorted(command.wheel_from.glob("*.whl"))
            if len(built) != 1:
                msg = f"expected one wheel in {command.wheel_from}, found {len(built)}"
                raise BuildMatrixError(msg)
            wheel = built[0]
        _call.call(
            *command.resolve(wheel),
            env={**base_env, **command.environment()},
            cwd=command.cwd,
            log=log,
        )
    return sorted(job.output_dir.glob("*.whl"))


@dataclass(frozen=True, slots=True)
class _AuditVerdict:
    ok: bool
    problems: tuple[str, ...]
    report: dict[str, Any] | None


def _audit(wheel: Path, target: WheelTarget) -> _AuditVerdict:
    """The audit gate (``buildmatrix.audit``): symbol versions, external libraries, tag."""
    from buildmatrix.audit import audit_wheel, printable

    package = target.package
    result = audit_wheel(
        wheel,
        policy=None if package.kind is WheelKind.PURE else package.policy,
        allowed_external=package.external_libs,
    )
    return _AuditVerdict(
        ok=bool(result.ok),
        problems=tuple(printable(f"{v.kind}: {v.file}: {v.detail}") for v in result.violations),
        report=result.to_json(),
    )


def _first_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    if not lines:
        return "failed"
    return lines[0] if len(lines) == 1 else f"{lines[0]} (see the log)"
