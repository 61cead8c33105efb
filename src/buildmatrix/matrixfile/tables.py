"""One reader per table of matrix.toml: a ``Section`` in, a model record out.

Each reader checks its own table (with the ``Section`` validators) and the
names it refers to; checks across tables run on the built ``Matrix``
(``buildmatrix.matrixfile.checks``).

Adding a field: a plain one (``str``, ``bool``, ``int``, ``datetime.date``,
``Version``, a ``StrEnum``, or one of these ``| None``; required unless it has a
default) is declared once, on the model dataclass, where a reader builds its record
with ``Section.record``. A field that needs a check of its own (a name, a
distribution, a choice among another table's names, a path, a ref, a
requirement template) is read here too and named in the ``record`` call.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from buildmatrix.matrixfile.section import NAME_CHARS, Section
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
    Note,
    OperatingSystem,
    Rule,
    RuntimePackage,
    WheelKind,
    WheelPackage,
)

__all__ = [
    "ADMONITIONS",
    "RULE_ATTRIBUTES",
    "RUNNER_JOB_KINDS",
    "read_arch",
    "read_build_support",
    "read_cloud",
    "read_cuda_base_images",
    "read_dependency",
    "read_framework",
    "read_gpu",
    "read_image",
    "read_installs",
    "read_manylinux",
    "read_note",
    "read_operating_system",
    "read_project",
    "read_rule",
    "read_runners",
    "read_runtime",
    "read_wheel",
]

RULE_ATTRIBUTES = ("kind", "release", "arch", "package", "framework", "python", "os")
ADMONITIONS = ("Note", "Caution", "Important", "Warning", "Tip")
# The CI job kinds whose runners matrix.toml may name per arch ([runners.<kind>]).
RUNNER_JOB_KINDS = ("wheel", "image")
_PATTERN_CHARS = NAME_CHARS | {"*", "?", "+"}


def read_project(s: Section) -> tuple[str, str]:
    """[project]: its name and source URL."""
    name = s.name("name", s.get("name", str), "project name")
    source_url = s.url("source")
    s.finish()
    return name, source_url


def read_arch(s: Section) -> Arch:
    name = s.name("name", s.get("name", str), "arch")
    platform = s.get("platform", str)
    os_name, _, cpu = platform.partition("/")
    if os_name != "linux" or not cpu or not set(cpu) <= NAME_CHARS:
        raise s.error("platform", f"{platform!r} is not an OCI platform such as linux/amd64")
    arch = s.record(Arch, defaults={"display": name}, name=name, platform=platform)
    s.finish()
    return arch


def read_gpu(s: Section) -> GpuArch:
    sms = s.strings("sm")
    for sm in sms:
        version = s.version("sm", sm)
        if len(version.release) != 2:
            raise s.error("sm", f"{sm!r} is not a compute capability such as 9.0")
    gpu = s.record(GpuArch, sm=tuple(sms))
    s.finish()
    return gpu


def read_operating_system(s: Section, archs: Sequence[str]) -> OperatingSystem:
    system = s.record(
        OperatingSystem,
        readers={
            "id": lambda: s.name("id", s.get("id", str), "os id"),
            "arch": lambda: s.choice("arch", s.get("arch", str), archs, "arch"),
            "glibc": s.optional_glibc,
        },
    )
    s.finish()
    return system


def read_cloud(s: Section, archs: Sequence[str]) -> CloudPlatform:
    cloud = s.record(
        CloudPlatform,
        readers={
            "arch": lambda: s.choice("arch", s.get("arch", str), archs, "arch"),
            "glibc": s.optional_glibc,
        },
    )
    s.finish()
    return cloud


def read_runtime(s: Section) -> RuntimePackage:
    raw_name = s.get("name", str)
    cuda = s.optional("cuda", str)
    package = s.record(
        RuntimePackage,
        defaults={"display": raw_name},
        # ``cuda``'s type is checked early (above), its version where it is today.
        readers={"cuda": lambda: None if cuda is None else s.version("cuda")},
        name=s.distribution("name", raw_name),
    )
    s.finish()
    return package


def read_dependency(name: str, s: Section) -> Dependency:
    canonical = s.distribution(None, name)
    if canonical != name:
        raise s.error(None, f"write the distribution name canonically: {canonical!r}, not {name!r}")
    dependency = s.record(Dependency, name=canonical)
    s.finish()
    return dependency


def read_framework(name: str, s: Section, dependencies: Sequence[str]) -> Framework:
    s.name(None, name, "framework")
    distribution = s.choice("distribution", s.get("distribution", str), dependencies, "dependency")
    requires = _requirement_templates(s, "requires", dependencies)
    image_requires = _requirement_templates(s, "image_requires", dependencies, default=())
    framework = s.record(
        Framework,
        readers={"extra": lambda: s.name("extra", s.get("extra", str), "extra")},
        name=name,
        distribution=NormalizedName(distribution),
        requires=requires,
        image_requires=image_requires,
    )
    s.finish()
    return framework


def _requirement_templates(
    s: Section, key: str, dependencies: Sequence[str], default: Sequence[str] | None = None
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
            s.choice(key, field, dependencies, "dependency in placeholder")
    return tuple(templates)


def read_manylinux(s: Section, archs: Sequence[str]) -> tuple[str, dict[str, str]]:
    """[manylinux]: the default policy and the pinned image per arch."""
    policy = s.policy("policy", s.get("policy", str))
    images = s.table("images")
    refs = images.image_refs(lambda arch: images.choice(arch, arch, archs, "arch"))
    s.finish()
    return policy, refs


def read_cuda_base_images(s: Section) -> dict[str, str]:
    """[cuda_base_images]: CUDA version -> pinned runtime base image."""
    return s.image_refs(lambda cuda: str(s.version(cuda, cuda)))


def read_wheel(name: str, s: Section, archs: Sequence[str], default_policy: str) -> WheelPackage:
    canonical = s.distribution("name", name)
    if canonical != name:
        raise s.error(None, f"write the package name canonically: {canonical!r}, not {name!r}")
    pythons = _wheel_pythons(s)
    wheel_archs = s.strings("arch")
    if not wheel_archs:
        raise s.error("arch", "must list at least one arch")
    for arch in wheel_archs:
        s.choice("arch", arch, archs, "arch")
    patterns = s.strings("external_libs", default=())
    for pattern in patterns:
        if not pattern or not set(pattern) <= _PATTERN_CHARS:
            raise s.error("external_libs", f"{pattern!r} is not a library name pattern such as libnixl*.so*")
    runtime = s.optional("requires_runtime", str)
    wheel = WheelPackage(
        name=canonical,
        kind=s.enum("kind", WheelKind, [k.value for k in WheelKind]),
        source=s.relative_path("source"),
        python=tuple(pythons),
        arch=tuple(wheel_archs),
        policy=s.policy("policy", s.get("policy", str, default_policy)),
        abi3=s.get("abi3", bool, False),
        external_libs=tuple(patterns),
        meta=s.get("meta", bool, False),
        requires_runtime=None if runtime is None else s.distribution("requires_runtime", runtime),
    )
    if wheel.meta and wheel.kind is not WheelKind.PURE:
        raise s.error("meta", 'a meta package must be pure (kind = "pure")')
    s.finish()
    return wheel


def _wheel_pythons(s: Section) -> list[str]:
    pythons = s.strings("python")
    if not pythons:
        raise s.error("python", "must list at least one Python version")
    for python in pythons:
        s.python("python", python)
    if pythons != sorted(pythons, key=Version):
        raise s.error("python", "list Python versions in ascending order")
    return pythons


def read_image(
    framework: str, s: Section, frameworks: Sequence[str], systems: Sequence[str], archs: Sequence[str]
) -> ImageSpec:
    s.choice(None, framework, frameworks, "framework")
    image_archs = s.strings("arch")
    for arch in image_archs:
        s.choice("arch", arch, archs, "arch")
    image = ImageSpec(
        framework=framework,
        name=s.name("name", s.get("name", str), "image name"),
        dockerfile=s.relative_path("dockerfile"),
        target=s.name("target", s.get("target", str), "target"),
        python=s.python("python", s.get("python", str)),
        os=s.choice("os", s.get("os", str), systems, "os"),
        arch=tuple(image_archs),
    )
    s.finish()
    return image


def read_rule(s: Section, choices: Mapping[str, Sequence[str]]) -> Rule:
    rule = Rule(
        id=s.name("id", s.get("id", str), "rule id"),
        when=_rule_attributes(s.optional_table("when"), choices),
        allow=_rule_attributes(s.optional_table("allow"), choices),
        forbid=_rule_attributes(s.optional_table("forbid"), choices),
        message=s.get("message", str),
        admonition=s.choice("admonition", s.get("admonition", str, "Caution"), ADMONITIONS, "admonition"),
        section=s.name("section", s.get("section", str, "platform"), "section"),
    )
    if not rule.allow and not rule.forbid:
        raise s.error(None, "a rule needs `allow` or `forbid`")
    s.finish()
    return rule


def _rule_attributes(
    table: Section | None, choices: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    """A rule's ``when``, ``allow`` or ``forbid``: attribute -> values."""
    if table is None:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for attribute, _ in table.entries():
        table.choice(attribute, attribute, RULE_ATTRIBUTES, "rule attribute")
        values = table.strings(attribute)
        if not values:
            raise table.error(attribute, "must list at least one value")
        for value in values:
            if attribute == "python":
                table.python(attribute, value)
            elif attribute == "package":
                table.choice(attribute, canonicalize_name(value), choices[attribute], attribute)
            else:
                table.choice(attribute, value, choices[attribute], attribute)
        out[attribute] = tuple(canonicalize_name(v) if attribute == "package" else v for v in values)
    return out


def read_note(s: Section) -> Note:
    note = s.record(
        Note,
        readers={
            "section": lambda: s.name("section", s.get("section", str), "section"),
            "admonition": lambda: s.choice("admonition", s.get("admonition", str), ADMONITIONS, "admonition"),
        },
    )
    s.finish()
    return note


def read_build_support(s: Section) -> BuildSupport:
    items = []
    for item in s.tables("items"):
        items.append(item.record(BuildSupportItem, readers={"url": functools.partial(item.url, "url")}))
        item.finish()
    support = s.record(BuildSupport, defaults={"description": ""}, items=tuple(items))
    s.finish()
    return support


def read_runners(root: Section, archs: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """[runners.<kind>] (optional): arch = "label" or a list of labels (self-hosted)."""
    runners: dict[str, dict[str, tuple[str, ...]]] = {}
    if not root.has("runners"):
        return runners
    for kind, s in root.subtables("runners"):
        s.choice(None, kind, RUNNER_JOB_KINDS, "runner job kind")
        labels: dict[str, tuple[str, ...]] = {}
        for arch, value in s.entries():
            s.choice(arch, arch, archs, "arch")
            raw = [value] if isinstance(value, str) else value
            if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
                raise s.error(arch, "expected a runner label or a non-empty list of labels")
            labels[arch] = tuple(s.name(arch, v, "runner label") for v in raw)
        runners[kind] = labels
    return runners


def read_installs(
    section: Section | None, extras: Sequence[str], archs: Sequence[str]
) -> InstallsConfig | None:
    """[installs] (optional): the indexes of the live installability check and its results file."""
    if section is None:
        return None
    indexes = []
    for s in section.tables("index"):
        url = s.url("url")
        chosen_extras = s.strings("extras", [])
        chosen_archs = s.strings("arch", [])
        for extra in chosen_extras:
            s.choice("extras", extra, extras, "extra")
        for arch in chosen_archs:
            s.choice("arch", arch, archs, "arch")
        s.finish()
        indexes.append(InstallIndex(url=url, extras=tuple(chosen_extras), arch=tuple(chosen_archs)))
    results = section.relative_path("results")
    section.finish()
    return InstallsConfig(indexes=tuple(indexes), results=results)
