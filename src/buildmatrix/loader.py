"""Read and validate matrix.toml: the one place raw TOML becomes the typed model.

Everything a later step passes to a command, a Dockerfile ARG or a label is
checked here, so no other module validates input: versions are PEP 440
(``packaging``), distribution names are canonical, names and paths use a safe
character set, image references are pinned (never ``latest``). Each error names
the file, the key path and, when the TOML text shows it, the line.
"""

from __future__ import annotations

import datetime
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import MatrixError, Origin, UsageError, did_you_mean
from buildmatrix.model import (
    Arch,
    BuildSupport,
    BuildSupportItem,
    CloudPlatform,
    Dependency,
    Framework,
    GpuArch,
    ImageSpec,
    InstallIndex,
    InstallsConfig,
    Matrix,
    Note,
    OperatingSystem,
    Release,
    ReleaseStatus,
    Rule,
    RuntimePackage,
    Status,
    WheelKind,
    WheelPackage,
)

__all__ = [
    "RULE_ATTRIBUTES",
    "image_ref_problem",
    "load_matrix",
    "parse_matrix",
    "select_releases",
    "url_problem",
]

SCHEMA_VERSION = 1
RULE_ATTRIBUTES = ("kind", "release", "arch", "package", "framework", "python", "os")
ADMONITIONS = ("Note", "Caution", "Important", "Warning", "Tip")
# The CI job kinds whose runners matrix.toml may name per arch ([runners.<kind>]).
RUNNER_JOB_KINDS = ("wheel", "image")
# Characters allowed in names, ids and tags that reach commands, ARGs and labels.
# Anything else (spaces, quotes, `;`, `$`, backticks, ...) is rejected at load time.
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
_PATH_CHARS = _NAME_CHARS | {"/"}
_PATTERN_CHARS = _NAME_CHARS | {"*", "?", "+"}
_REF_CHARS = _NAME_CHARS | {"/", ":", "@"}
_URL_UNSAFE = frozenset(" \t\r\n\"'`$;&|<>(){}\\")
_HEX = frozenset(string.hexdigits.lower())

T = TypeVar("T")


def load_matrix(path: Path) -> Matrix:
    """Read ``path``; any problem is a ``MatrixError``/``UsageError`` (exit 2).

    Only a regular file of at most ``MAX_INPUT_BYTES`` is read (a FIFO would
    block forever), and nesting deeper than ``MAX_NESTING`` is refused.
    """
    from buildmatrix._paths import read_regular_text

    try:
        text = read_regular_text(path, "matrix file")
    except UsageError as error:
        if "not found" in error.message:
            msg = f"{error.message} (pass --matrix PATH or set $BUILDMATRIX_MATRIX)"
            raise UsageError(msg) from None
        raise
    return parse_matrix(text, path)


MAX_NESTING = 16  # tables and arrays inside each other; the real matrix needs 4


def parse_matrix(text: str, path: Path) -> Matrix:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MatrixError(Origin(str(path)), f"invalid TOML: {error}") from None
    except RecursionError:
        raise MatrixError(Origin(str(path)), "invalid TOML: nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise MatrixError(Origin(str(path)), f"invalid TOML: {error}") from None
    _check_nesting(data, path)
    return _Loader(path, text).matrix(data)


def _check_nesting(data: object, path: Path) -> None:
    """Refuse deeper nesting than any matrix needs, before recursive code walks it."""
    stack: list[tuple[object, KeyPath]] = [(data, ())]
    while stack:
        value, key = stack.pop()
        if len(key) > MAX_NESTING:
            problem = f"nested more than {MAX_NESTING} levels deep"
            raise MatrixError(Origin(str(path), _dotted(key[:MAX_NESTING]) + "..."), problem)
        if isinstance(value, dict):
            stack.extend((item, (*key, str(name))) for name, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*key, index)) for index, item in enumerate(value))


def select_releases(matrix: Matrix, names: Sequence[str] | None) -> tuple[Release, ...]:
    """The releases named on the command line, in matrix order; all when none are."""
    if not names:
        return matrix.releases
    chosen: list[Release] = []
    for name in names:
        release = matrix.find_release(name)
        if release is None:
            known = [r.name for r in matrix.releases]
            msg = (
                f"unknown release {name!r}{did_you_mean(name, known)}; "
                f"releases in {matrix.path}: {', '.join(known)}"
            )
            raise UsageError(msg)
        if release not in chosen:
            chosen.append(release)
    return tuple(r for r in matrix.releases if r in chosen)


KeyPath = tuple[str | int, ...]


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class _LineIndex:
    """Maps key paths to the line that defines them, using tomllib on single lines.

    tomllib reports no positions for valid documents, so each header or
    ``key = value`` line is parsed on its own; lines inside multi-line values
    simply do not parse and are skipped.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        array_counts: dict[KeyPath, int] = {}
        table: KeyPath = ()
        in_multiline_string = False
        for number, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if stripped.count('"""') % 2 == 1 or stripped.count("'''") % 2 == 1:
                in_multiline_string = not in_multiline_string
                if not in_multiline_string:
                    continue
            elif in_multiline_string:
                continue
            if not stripped or stripped.startswith("#"):
                continue
            try:
                fragment = tomllib.loads(stripped)
            except tomllib.TOMLDecodeError:
                try:  # the opening line of a multi-line value: record its key
                    fragment = tomllib.loads(stripped.split("=", 1)[0] + "= 0")
                except tomllib.TOMLDecodeError:
                    continue
            if stripped.startswith("[["):
                header = self._with_indexes(self._first_path(fragment), array_counts)
                array_counts[header] = array_counts.get(header, -1) + 1
                table = (*header, array_counts[header])
                self.lines.setdefault(table, number)
            elif stripped.startswith("["):
                table = self._with_indexes(self._first_path(fragment), array_counts)
                self.lines.setdefault(table, number)
            else:
                for key in self._leaf_paths(fragment):
                    self.lines.setdefault((*table, *key), number)

    @staticmethod
    def _first_path(fragment: Any) -> KeyPath:
        path: list[str | int] = []
        while isinstance(fragment, dict) and len(fragment) == 1:
            key, fragment = next(iter(fragment.items()))
            path.append(key)
            if isinstance(fragment, list):
                fragment = fragment[0] if fragment else {}
        return tuple(path)

    @staticmethod
    def _with_indexes(path: KeyPath, array_counts: Mapping[KeyPath, int]) -> KeyPath:
        """``[release.pins]`` after ``[[release]]`` means the last release's pins."""
        out: list[str | int] = []
        for part in path:
            out.append(part)
            count = array_counts.get(tuple(out))
            if count is not None and part != path[-1]:
                out.append(count)
        return tuple(out)

    @classmethod
    def _leaf_paths(cls, fragment: Mapping[str, Any]) -> Iterable[KeyPath]:
        for key, value in fragment.items():
            yield (key,)
            if isinstance(value, dict):
                for sub in cls._leaf_paths(value):
                    yield (key, *sub)

    def line(self, path: KeyPath) -> int | None:
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "an array",
    dict: "a table",
    datetime.date: "a date",
}


def _type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


class _Section:
    """A TOML table being read: typed access by key, unknown keys are errors."""

    def __init__(self, loader: _Loader, data: object, path: KeyPath) -> None:
        self.loader = loader
        self.path = path
        if not isinstance(data, dict):
            raise loader.error(path, f"expected a table, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def error(self, key: str | int | None, problem: str) -> MatrixError:
        return self.loader.error(self.path if key is None else (*self.path, key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type[T], default: T | None = None) -> T:
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise self.error(None, f"missing required key {key!r}")
            return default
        value = self.data[key]
        # bool is an int in Python; TOML keeps them apart, so do we.
        if type(value) is not kind:
            raise self.error(key, f"expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        if key not in self.data:
            self.used.add(key)
            return None
        return self.get(key, kind)

    def strings(self, key: str, default: Sequence[str] | None = None) -> list[str]:
        if key not in self.data and default is not None:
            self.used.add(key)
            return list(default)
        values = self.get(key, list)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(key, f"item {index} must be a string, got {_type_name(value)}")
        if len(set(values)) != len(values):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            raise self.error(key, f"duplicate values: {', '.join(duplicates)}")
        return values

    def tables(self, key: str) -> list[_Section]:
        """An array of tables (``[[key]]``), each as a section."""
        values = self.get(key, list)
        if not values:
            raise self.error(key, "must not be empty")
        return [_Section(self.loader, item, (*self.path, key, i)) for i, item in enumerate(values)]

    def optional_tables(self, key: str) -> list[_Section]:
        if key not in self.data:
            self.used.add(key)
            return []
        return self.tables(key)

    def subtables(self, key: str, *, allow_empty: bool = False) -> list[tuple[str, _Section]]:
        """A table of tables (``[key.name]``) as (name, section) pairs in file order."""
        table = self.get(key, dict)
        if not table and not allow_empty:
            raise self.error(key, "must not be empty")
        return [
            (name, _Section(self.loader, value, (*self.path, key, name))) for name, value in table.items()
        ]

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used:
                known = sorted(self.used)
                raise self.error(
                    key,
                    f"unknown key {key!r}{did_you_mean(key, known)}; known keys: {', '.join(known)}",
                )


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.index = _LineIndex(text)

    def error(self, path: KeyPath, problem: str) -> MatrixError:
        return MatrixError(Origin(str(self.path), _dotted(path), self.index.line(path)), problem)

    # -- value validators ------------------------------------------------------------

    def version(self, section: _Section, key: str, value: str | None = None) -> Version:
        raw = section.get(key, str) if value is None else value
        try:
            return Version(raw)
        except InvalidVersion:
            raise section.error(key, f"{raw!r} is not a valid PEP 440 version") from None

    def python(self, section: _Section, key: str | None, raw: str) -> str:
        try:
            parsed = Version(raw)
        except InvalidVersion:
            parsed = None
        if parsed is None or len(parsed.release) != 2 or str(parsed) != raw or parsed.major != 3:
            raise section.error(key, f"{raw!r} is not a Python version of the form 3.12")
        return raw

    def name(self, section: _Section, key: str | None, raw: str, what: str = "name") -> str:
        if not raw or not set(raw) <= _NAME_CHARS or raw[0] in "-.":
            raise section.error(key, f"{what} {raw!r} may only contain letters, digits, '.', '_' and '-'")
        return raw

    def distribution(self, section: _Section, key: str | None, raw: str) -> NormalizedName:
        try:
            return canonicalize_name(raw, validate=True)
        except InvalidName:
            raise section.error(key, f"{raw!r} is not a valid distribution name") from None

    def relative_path(self, section: _Section, key: str) -> Path:
        raw = section.get(key, str)
        pure = PurePosixPath(raw)
        if not raw or not set(raw) <= _PATH_CHARS or pure.is_absolute() or ".." in pure.parts:
            raise section.error(
                key,
                f"{raw!r} must be a relative path inside the matrix's folder "
                "(letters, digits, '.', '_', '-', '/'; no '..')",
            )
        return self.path.parent.resolve() / pure

    def image_ref(self, section: _Section, key: str | None, raw: str) -> str:
        """A pinned image reference: ``registry/name:tag`` or ``...@sha256:<64 hex>``."""
        problem = image_ref_problem(raw)
        if problem:
            raise section.error(key, f"image reference {raw!r}: {problem}")
        return raw

    def url(self, section: _Section, key: str) -> str:
        raw = section.get(key, str)
        problem = url_problem(raw)
        if problem:
            raise section.error(key, problem)
        return raw

    def choice(self, section: _Section, key: str | None, raw: str, choices: Sequence[str], what: str) -> str:
        if raw not in choices:
            raise section.error(
                key,
                f"unknown {what} {raw!r}{did_you_mean(raw, choices)}; known: {', '.join(choices)}",
            )
        return raw

    def enum(self, section: _Section, key: str, kind: Callable[[str], T], choices: Sequence[str]) -> T:
        raw = section.get(key, str)
        return kind(self.choice(section, key, raw, choices, key))

    # -- the document ----------------------------------------------------------------

    def matrix(self, data: dict[str, Any]) -> Matrix:
        root = _Section(self, data, ())
        if not data:
            raise self.error(
                (), "the matrix is empty: it needs at least [[release]], [[arch]] and [framework.*]"
            )
        schema = root.get("schema", int)
        if schema != SCHEMA_VERSION:
            raise root.error(
                "schema",
                f"unsupported schema {schema}; this buildmatrix reads schema {SCHEMA_VERSION}",
            )
        project = _Section(self, root.get("project", dict), ("project",))
        project_name = self.name(project, "name", project.get("name", str), "project name")
        source_url = self.url(project, "source")
        project.finish()

        archs = tuple(self.arch(s) for s in root.tables("arch"))
        self.unique(root, "arch", [a.name for a in archs])
        arch_names = [a.name for a in archs]
        gpus = tuple(self.gpu(s) for s in root.tables("gpu"))
        self.unique(root, "gpu", [g.name for g in gpus])
        systems = tuple(self.operating_system(s, arch_names) for s in root.tables("os"))
        self.unique(root, "os", [f"{o.id} on {o.arch}" for o in systems])
        clouds = tuple(self.cloud(s, arch_names) for s in root.optional_tables("cloud"))
        runtime = tuple(self.runtime(s) for s in root.tables("runtime"))
        self.unique(root, "runtime", [r.name for r in runtime])

        dependencies = tuple(self.dependency(name, s) for name, s in root.subtables("dependency"))
        self.unique(root, "dependency", [d.name for d in dependencies])
        dependency_names = [str(d.name) for d in dependencies]
        frameworks = tuple(
            self.framework(name, s, dependency_names) for name, s in root.subtables("framework")
        )
        framework_names = [f.name for f in frameworks]

        releases = self.releases(root, dependency_names, framework_names)
        for framework, (_, section) in zip(frameworks, root.subtables("framework"), strict=True):
            self.check_requirements(framework, section, releases)

        manylinux = _Section(self, root.get("manylinux", dict), ("manylinux",))
        manylinux_policy = self.policy(manylinux, "policy", manylinux.get("policy", str))
        images_table = _Section(self, manylinux.get("images", dict), ("manylinux", "images"))
        manylinux_images: dict[str, str] = {}
        for arch, ref in images_table.data.items():
            images_table.used.add(arch)
            self.choice(images_table, arch, arch, arch_names, "arch")
            if not isinstance(ref, str):
                raise images_table.error(arch, f"expected a string, got {_type_name(ref)}")
            manylinux_images[arch] = self.image_ref(images_table, arch, ref)
        manylinux.finish()

        wheels = tuple(
            self.wheel(name, s, arch_names, manylinux_policy) for name, s in root.subtables("wheel")
        )
        self.unique(root, "wheel", [w.name for w in wheels])
        wheel_names = [str(w.name) for w in wheels]
        for (_, section), wheel in zip(root.subtables("wheel"), wheels, strict=True):
            if wheel.requires_runtime is not None:
                self.choice(
                    section,
                    "requires_runtime",
                    wheel.requires_runtime,
                    wheel_names,
                    "wheel package",
                )
            if wheel.kind is WheelKind.NATIVE:
                for arch in wheel.arch:
                    if arch not in manylinux_images:
                        raise self.error(
                            ("manylinux", "images"),
                            f"no manylinux image for arch {arch!r}, which wheel {wheel.name!r} is built for",
                        )

        cuda_table = _Section(self, root.get("cuda_base_images", dict), ("cuda_base_images",))
        cuda_base_images: dict[str, str] = {}
        for cuda, ref in cuda_table.data.items():
            cuda_table.used.add(cuda)
            version = self.version(cuda_table, cuda, cuda)
            if not isinstance(ref, str):
                raise cuda_table.error(cuda, f"expected a string, got {_type_name(ref)}")
            cuda_base_images[str(version)] = self.image_ref(cuda_table, cuda, ref)

        os_ids = sorted({o.id for o in systems})
        images = tuple(
            self.image(name, s, framework_names, os_ids, arch_names) for name, s in root.subtables("image")
        )
        for release in releases:
            for framework in frameworks:
                cuda = str(release.cuda[framework.name])
                if any(i.framework == framework.name for i in images) and cuda not in cuda_base_images:
                    raise self.error(
                        ("cuda_base_images",),
                        f"no base image for CUDA {cuda}, "
                        f"which {framework.name} uses in release {release.name}",
                    )

        choices: dict[str, list[str]] = {
            "kind": ["wheel", "image"],
            "release": [r.name for r in releases],
            "arch": arch_names,
            "package": wheel_names,
            "framework": framework_names,
            "os": os_ids,
        }
        rules = tuple(self.rule(s, choices) for s in root.optional_tables("rule"))
        self.unique(root, "rule", [r.id for r in rules])
        notes = tuple(self.note(s) for s in root.optional_tables("note"))
        build_support = tuple(self.build_support(s) for s in root.optional_tables("build_support"))
        runners = self.runners(root, arch_names)
        installs = self.installs(root, [f.extra for f in frameworks], arch_names)
        root.finish()
        index: dict[str, Release] = {r.name: r for r in releases}
        return Matrix(
            path=self.path,
            project=project_name,
            source_url=source_url,
            archs=archs,
            gpus=gpus,
            operating_systems=systems,
            clouds=clouds,
            runtime_packages=runtime,
            dependencies=dependencies,
            frameworks=frameworks,
            releases=releases,
            wheels=wheels,
            images=images,
            rules=rules,
            notes=notes,
            build_support=build_support,
            manylinux_images=manylinux_images,
            cuda_base_images=cuda_base_images,
            runners=runners,
            installs=installs,
            _release_index=index,
        )

    def runners(self, root: _Section, archs: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        """[runners.<kind>] (optional): arch = "label" or a list of labels (self-hosted)."""
        runners: dict[str, dict[str, tuple[str, ...]]] = {}
        if not root.has("runners"):
            return runners
        for kind, s in root.subtables("runners"):
            self.choice(s, None, kind, RUNNER_JOB_KINDS, "runner job kind")
            labels: dict[str, tuple[str, ...]] = {}
            for arch, value in s.data.items():
                s.used.add(arch)
                self.choice(s, arch, arch, archs, "arch")
                raw = [value] if isinstance(value, str) else value
                if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
                    raise s.error(arch, "expected a runner label or a non-empty list of labels")
                labels[arch] = tuple(self.name(s, arch, v, "runner label") for v in raw)
            runners[kind] = labels
        return runners

    def unique(self, root: _Section, key: str, values: Sequence[object]) -> None:
        seen: set[object] = set()
        for index, value in enumerate(values):
            if value in seen:
                raise self.error((key, index), f"duplicate {key} {str(value)!r}")
            seen.add(value)

    def status(self, section: _Section) -> Status:
        return self.enum(section, "status", Status, [s.value for s in Status])

    def arch(self, s: _Section) -> Arch:
        name = self.name(s, "name", s.get("name", str), "arch")
        platform = s.get("platform", str)
        os_name, _, cpu = platform.partition("/")
        if os_name != "linux" or not cpu or not set(cpu) <= _NAME_CHARS:
            raise s.error("platform", f"{platform!r} is not an OCI platform such as linux/amd64")
        arch = Arch(name=name, platform=platform, display=s.get("display", str, name), status=self.status(s))
        s.finish()
        return arch

    def gpu(self, s: _Section) -> GpuArch:
        sms = s.strings("sm")
        for sm in sms:
            version = self.version(s, "sm", sm)
            if len(version.release) != 2:
                raise s.error("sm", f"{sm!r} is not a compute capability such as 9.0")
        gpu = GpuArch(
            name=s.get("name", str),
            display=s.get("display", str),
            sm=tuple(sms),
            status=self.status(s),
        )
        s.finish()
        return gpu

    def operating_system(self, s: _Section, archs: Sequence[str]) -> OperatingSystem:
        system = OperatingSystem(
            id=self.name(s, "id", s.get("id", str), "os id"),
            name=s.get("name", str),
            version=s.get("version", str),
            arch=self.choice(s, "arch", s.get("arch", str), archs, "arch"),
            status=self.status(s),
            glibc=self.optional_glibc(s),
        )
        s.finish()
        return system

    def cloud(self, s: _Section, archs: Sequence[str]) -> CloudPlatform:
        cloud = CloudPlatform(
            provider=s.get("provider", str),
            os=s.get("os", str),
            version=s.get("version", str),
            arch=self.choice(s, "arch", s.get("arch", str), archs, "arch"),
            status=self.status(s),
            footnote=s.get("footnote", str, ""),
            glibc=self.optional_glibc(s),
        )
        s.finish()
        return cloud

    def optional_glibc(self, s: _Section) -> Version | None:
        raw = s.optional("glibc", str)
        if raw is None:
            return None
        version = self.version(s, "glibc", raw)
        if len(version.release) != 2 or str(version) != raw or version.major != 2:
            raise s.error("glibc", f"{raw!r} is not a glibc version of the form 2.35")
        return version

    def installs(self, root: _Section, extras: Sequence[str], archs: Sequence[str]) -> InstallsConfig | None:
        if not root.has("installs"):
            root.used.add("installs")
            return None
        section = _Section(self, root.get("installs", dict), ("installs",))
        indexes = []
        for s in section.tables("index"):
            url = self.url(s, "url")
            chosen_extras = s.strings("extras", [])
            chosen_archs = s.strings("arch", [])
            for extra in chosen_extras:
                self.choice(s, "extras", extra, extras, "extra")
            for arch in chosen_archs:
                self.choice(s, "arch", arch, archs, "arch")
            s.finish()
            indexes.append(InstallIndex(url=url, extras=tuple(chosen_extras), arch=tuple(chosen_archs)))
        results = self.relative_path(section, "results")
        section.finish()
        return InstallsConfig(indexes=tuple(indexes), results=results)

    def runtime(self, s: _Section) -> RuntimePackage:
        raw_name = s.get("name", str)
        cuda = s.optional("cuda", str)
        package = RuntimePackage(
            name=self.distribution(s, "name", raw_name),
            display=s.get("display", str, raw_name),
            version=self.version(s, "version"),
            glibc=self.version(s, "glibc"),
            cuda=None if cuda is None else self.version(s, "cuda"),
            remark=s.get("remark", str, ""),
        )
        s.finish()
        return package

    def dependency(self, name: str, s: _Section) -> Dependency:
        canonical = self.distribution(s, None, name)
        if canonical != name:
            raise s.error(None, f"write the distribution name canonically: {canonical!r}, not {name!r}")
        dependency = Dependency(name=canonical, display=s.get("display", str))
        s.finish()
        return dependency

    def framework(self, name: str, s: _Section, dependencies: Sequence[str]) -> Framework:
        self.name(s, None, name, "framework")
        distribution = self.choice(s, "distribution", s.get("distribution", str), dependencies, "dependency")
        requires = self.requirement_templates(s, "requires", dependencies)
        image_requires = self.requirement_templates(s, "image_requires", dependencies, default=())
        framework = Framework(
            name=name,
            display=s.get("display", str),
            distribution=NormalizedName(distribution),
            extra=self.name(s, "extra", s.get("extra", str), "extra"),
            requires=requires,
            image_requires=image_requires,
        )
        s.finish()
        return framework

    def requirement_templates(
        self, s: _Section, key: str, dependencies: Sequence[str], default: Sequence[str] | None = None
    ) -> tuple[str, ...]:
        """Requirement strings whose only placeholders are plain pin names: ``{vllm}``."""
        templates = s.strings(key, default=default)
        for template in templates:
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError as error:  # an unbalanced brace
                raise s.error(key, f"malformed placeholder in {template!r}: {error}") from None
            for _, field, spec, conversion in parsed:
                if field is None:
                    continue
                if spec or conversion:
                    raise s.error(key, f"placeholder {{{field}}} may not use a format spec or conversion")
                self.choice(s, key, field, dependencies, "dependency in placeholder")
        return tuple(templates)

    def check_requirements(self, framework: Framework, s: _Section, releases: Sequence[Release]) -> None:
        """Every release must turn every requirement template into a valid requirement."""
        for release in releases:
            try:
                requirements = framework.requirements(release.pins)
            except InvalidRequirement as error:
                raise s.error("requires", f"release {release.name}: invalid requirement: {error}") from None
            try:
                framework.image_requirements(release.pins)
            except InvalidRequirement as error:
                message = f"release {release.name}: invalid requirement: {error}"
                raise s.error("image_requires", message) from None
            if framework.distribution not in {canonicalize_name(r.name) for r in requirements}:
                raise s.error(
                    "requires",
                    f"no requirement on the framework's own distribution {framework.distribution!r}",
                )

    def releases(
        self, root: _Section, dependencies: Sequence[str], frameworks: Sequence[str]
    ) -> tuple[Release, ...]:
        sections = root.tables("release")
        raw: list[tuple[_Section, dict[str, Any]]] = []
        names: list[str] = []
        by_bare_name: dict[str, int] = {}  # "0.7.1" and "v0.7.1" name the same release
        for s in sections:
            name = self.name(s, "name", s.get("name", str), "release")
            earlier = by_bare_name.setdefault(name.removeprefix("v"), len(names))
            if earlier != len(names):
                raise s.error(
                    "name", f"duplicate release {name!r} (release[{earlier}] is {names[earlier]!r})"
                )
            names.append(name)
            status = self.enum(s, "status", ReleaseStatus, [r.value for r in ReleaseStatus])
            planned = s.optional("planned", datetime.date)
            if planned is not None and status is not ReleaseStatus.UNRELEASED:
                raise s.error("planned", "only an unreleased release has a planned date")
            pins_section = _Section(self, s.get("pins", dict), (*s.path, "pins"))
            pins: dict[NormalizedName, Version] = {}
            for key in pins_section.data:
                pins_section.used.add(key)
                self.choice(pins_section, key, key, dependencies, "dependency")
                pins[NormalizedName(key)] = self.version(pins_section, key)
            for dependency in dependencies:
                if dependency not in pins:
                    raise pins_section.error(None, f"missing pin for {dependency!r}")
            raw.append(
                (
                    s,
                    {
                        "name": name,
                        "display": s.get("display", str, name),
                        "version": self.version(s, "version"),
                        "status": status,
                        "planned": planned,
                        "pins": pins,
                        "cuda_section": _Section(self, s.get("cuda", dict), (*s.path, "cuda")),
                    },
                )
            )
        explicit: dict[str, dict[str, Version]] = {}
        for _, fields in raw:
            cuda_section: _Section = fields["cuda_section"]
            if cuda_section.has("inherit"):
                continue
            cuda: dict[str, Version] = {}
            for key in cuda_section.data:
                cuda_section.used.add(key)
                self.choice(cuda_section, key, key, frameworks, "framework")
                cuda[key] = self.version(cuda_section, key)
            for framework in frameworks:
                if framework not in cuda:
                    raise cuda_section.error(
                        None,
                        f'missing CUDA version for {framework!r} (or write `inherit = "<release>"`)',
                    )
            cuda_section.finish()
            explicit[fields["name"]] = cuda
        releases: list[Release] = []
        for s, fields in raw:
            cuda_section = fields.pop("cuda_section")
            inherited: str | None = None
            if fields["name"] in explicit:
                cuda = explicit[fields["name"]]
            else:
                inherited = self.choice(
                    cuda_section, "inherit", cuda_section.get("inherit", str), names, "release"
                )
                if inherited not in explicit:
                    raise cuda_section.error(
                        "inherit",
                        f"release {inherited!r} inherits its CUDA table too; name a release that states it",
                    )
                cuda_section.finish()
                cuda = explicit[inherited]
            s.finish()
            releases.append(Release(**fields, cuda=cuda, cuda_inherited_from=inherited))
        return tuple(releases)

    def policy(self, s: _Section, key: str | None, raw: str) -> str:
        family, _, glibc = raw.partition("_")
        major, _, minor = glibc.partition("_")
        if family not in ("manylinux", "musllinux") or not major.isdigit() or not minor.isdigit():
            raise s.error(key, f"{raw!r} is not a platform policy such as manylinux_2_28")
        return raw

    def wheel(self, name: str, s: _Section, archs: Sequence[str], default_policy: str) -> WheelPackage:
        canonical = self.distribution(s, "name", name)
        if canonical != name:
            raise s.error(None, f"write the package name canonically: {canonical!r}, not {name!r}")
        pythons = s.strings("python")
        if not pythons:
            raise s.error("python", "must list at least one Python version")
        for python in pythons:
            self.python(s, "python", python)
        if pythons != sorted(pythons, key=Version):
            raise s.error("python", "list Python versions in ascending order")
        wheel_archs = s.strings("arch")
        if not wheel_archs:
            raise s.error("arch", "must list at least one arch")
        for arch in wheel_archs:
            self.choice(s, "arch", arch, archs, "arch")
        patterns = s.strings("external_libs", default=())
        for pattern in patterns:
            if not pattern or not set(pattern) <= _PATTERN_CHARS:
                raise s.error(
                    "external_libs",
                    f"{pattern!r} is not a library name pattern such as libnixl*.so*",
                )
        runtime = s.optional("requires_runtime", str)
        wheel = WheelPackage(
            name=canonical,
            kind=self.enum(s, "kind", WheelKind, [k.value for k in WheelKind]),
            source=self.relative_path(s, "source"),
            python=tuple(pythons),
            arch=tuple(wheel_archs),
            policy=self.policy(s, "policy", s.get("policy", str, default_policy)),
            abi3=s.get("abi3", bool, False),
            external_libs=tuple(patterns),
            meta=s.get("meta", bool, False),
            requires_runtime=None if runtime is None else self.distribution(s, "requires_runtime", runtime),
        )
        if wheel.meta and wheel.kind is not WheelKind.PURE:
            raise s.error("meta", 'a meta package must be pure (kind = "pure")')
        s.finish()
        return wheel

    def image(
        self,
        framework: str,
        s: _Section,
        frameworks: Sequence[str],
        systems: Sequence[str],
        archs: Sequence[str],
    ) -> ImageSpec:
        self.choice(s, None, framework, frameworks, "framework")
        image_archs = s.strings("arch")
        for arch in image_archs:
            self.choice(s, "arch", arch, archs, "arch")
        image = ImageSpec(
            framework=framework,
            name=self.name(s, "name", s.get("name", str), "image name"),
            dockerfile=self.relative_path(s, "dockerfile"),
            target=self.name(s, "target", s.get("target", str), "target"),
            python=self.python(s, "python", s.get("python", str)),
            os=self.choice(s, "os", s.get("os", str), systems, "os"),
            arch=tuple(image_archs),
        )
        s.finish()
        return image

    def rule(self, s: _Section, choices: Mapping[str, Sequence[str]]) -> Rule:
        def attributes(key: str) -> dict[str, tuple[str, ...]]:
            if not s.has(key):
                s.used.add(key)
                return {}
            table = _Section(self, s.get(key, dict), (*s.path, key))
            out: dict[str, tuple[str, ...]] = {}
            for attribute in table.data:
                table.used.add(attribute)
                self.choice(table, attribute, attribute, RULE_ATTRIBUTES, "rule attribute")
                values = table.strings(attribute)
                if not values:
                    raise table.error(attribute, "must list at least one value")
                for value in values:
                    if attribute == "python":
                        self.python(table, attribute, value)
                    elif attribute == "package":
                        self.choice(
                            table,
                            attribute,
                            canonicalize_name(value),
                            choices[attribute],
                            attribute,
                        )
                    else:
                        self.choice(table, attribute, value, choices[attribute], attribute)
                out[attribute] = tuple(canonicalize_name(v) if attribute == "package" else v for v in values)
            return out

        rule = Rule(
            id=self.name(s, "id", s.get("id", str), "rule id"),
            when=attributes("when"),
            allow=attributes("allow"),
            forbid=attributes("forbid"),
            message=s.get("message", str),
            admonition=self.choice(
                s, "admonition", s.get("admonition", str, "Caution"), ADMONITIONS, "admonition"
            ),
            section=self.name(s, "section", s.get("section", str, "platform"), "section"),
        )
        if not rule.allow and not rule.forbid:
            raise s.error(None, "a rule needs `allow` or `forbid`")
        s.finish()
        return rule

    def note(self, s: _Section) -> Note:
        note = Note(
            section=self.name(s, "section", s.get("section", str), "section"),
            admonition=self.choice(s, "admonition", s.get("admonition", str), ADMONITIONS, "admonition"),
            text=s.get("text", str),
        )
        s.finish()
        return note

    def build_support(self, s: _Section) -> BuildSupport:
        items = []
        for item in s.tables("items"):
            items.append(
                BuildSupportItem(
                    name=item.get("name", str),
                    url=self.url(item, "url"),
                    remark=item.get("remark", str, ""),
                )
            )
            item.finish()
        support = BuildSupport(
            title=s.get("title", str), description=s.get("description", str, ""), items=tuple(items)
        )
        s.finish()
        return support


def url_problem(url: str, schemes: tuple[str, ...] = ("https",)) -> str:
    """Why ``url`` is not a URL safe to pass on (scheme, host, no spaces or quotes), or ``""``."""
    from buildmatrix.redact import has_credentials, redact_url

    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in the host ("Invalid IPv6 URL")
        hostname = None
    if not hostname or parts.scheme not in schemes or set(url) & _URL_UNSAFE:
        return f"{redact_url(url)!r} is not an {' or '.join(schemes)} URL without spaces or quotes"
    if has_credentials(url):
        # It would be written into labels, docs and logs, where credentials must never go.
        return f"{redact_url(url)!r} carries credentials (user info or a token in the query)"
    return ""


def image_ref_problem(ref: str) -> str:
    """Why ``ref`` is not a pinned image reference, or ``""`` when it is."""
    if not ref or not set(ref) <= _REF_CHARS:
        return "only letters, digits and . _ - / : @ are allowed"
    name, at, digest = ref.partition("@")
    if at:
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm != "sha256" or len(hexdigits) != 64 or not set(hexdigits) <= _HEX:
            return "a digest must be sha256:<64 lowercase hex digits>"
    last = name.rsplit("/", 1)[-1]
    repository, colon, tag = last.partition(":")
    if not repository or any(not part for part in name.split("/")):
        return "empty name component"
    if not colon and not at:
        return "no tag or digest: pin it (e.g. :12.8.1-runtime-ubuntu24.04 or @sha256:...)"
    if colon and (not tag or len(tag) > 128 or tag[0] in ".-"):
        return f"invalid tag {tag!r}"
    if tag == "latest":
        return "`latest` is not a pin: name a version tag or a digest"
    return ""
