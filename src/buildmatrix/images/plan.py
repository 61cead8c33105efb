"""The engine-neutral image plan: what to build, with which args, labels and tags.

One ``ImageBuild`` per framework image and release (or per platform when the
plan is split for native runners). Every value in it comes from the matrix or
from a command-line flag validated by the images command (``buildmatrix.cli.images``),
so an engine only turns the plan into its own command line or bake file; it never
decides anything.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from buildmatrix.errors import UsageError, check_choice
from buildmatrix.expand import image_pins
from buildmatrix.images.dockerfile import stage_args
from buildmatrix.model import Framework, ImageSpec, Matrix, Release

__all__ = [
    "CacheRef",
    "ImageBuild",
    "ImageOptions",
    "MergeStep",
    "Secret",
    "merge_name",
    "merge_steps",
    "plan_images",
    "resolve_frameworks",
]

# What every image carries for `buildmatrix verify`: these labels and the pins file.
PINS_FILE = "/opt/buildmatrix/pins.json"
LABEL_RELEASE = "org.buildmatrix.release"
LABEL_FRAMEWORK = "org.buildmatrix.framework"
LABEL_CUDA = "org.buildmatrix.cuda"
LABEL_PYTHON = "org.buildmatrix.python"
LABEL_PIN_PREFIX = "org.buildmatrix.pin."


@dataclass(frozen=True, slots=True)
class CacheRef:
    """A registry cache location: ``repository:tag``, one per framework, CUDA major and platform."""

    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True, slots=True)
class Secret:
    """A build secret: mounted at build time only, never an arg or a label."""

    id: str
    src: Path

    def __str__(self) -> str:
        return f"id={self.id},src={self.src}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOptions:
    """Command-line choices, already validated (see ``check_*`` and ``parse_secret``)."""

    platforms: tuple[str, ...] = ()  # empty: every platform the matrix lists
    tag_prefix: str | None = None  # default: localhost/<project>
    # Base image overrides: "" applies to every image, "12.8" to images on that CUDA;
    # default: the matrix's [cuda_base_images].
    base_images: Mapping[str, str] = field(default_factory=dict)
    index_url: str | None = None
    no_index: bool = False
    find_links: Path | None = None
    wheelhouse: Path | None = None  # default: <matrix folder>/wheelhouse
    cache_from: str | None = None  # a repository; tags are per framework/CUDA/platform
    cache_to: str | None = None
    secrets: tuple[Secret, ...] = ()
    split: bool = False  # one build per platform (native runners), merged later
    created: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    )
    revision: str = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageBuild:
    """One image build, as every engine needs it."""

    name: str  # unique, bake-safe: "vllm-main-cuda12", "vllm-v0_7_1-cuda12-arm64"
    framework: str
    release: str
    image: str  # repository name under the tag prefix: "vllm-runtime"
    dockerfile: Path
    context: Path
    target: str
    platforms: tuple[str, ...]
    args: Mapping[str, str]
    labels: Mapping[str, str]
    tags: tuple[str, ...]
    contexts: Mapping[str, Path]  # named build contexts (find-links, wheelhouse)
    pins: Mapping[str, str]
    cuda: str  # "12.8"
    cache_from: tuple[CacheRef, ...] = ()
    cache_to: tuple[CacheRef, ...] = ()
    secrets: tuple[Secret, ...] = ()

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        def show(path: Path) -> str:
            return _relative(path, root) if root is not None else str(path)

        return {
            "name": self.name,
            "framework": self.framework,
            "release": self.release,
            "image": self.image,
            "dockerfile": show(self.dockerfile),
            "context": show(self.context),
            "target": self.target,
            "platforms": list(self.platforms),
            "tags": list(self.tags),
            "args": dict(self.args),
            "labels": dict(self.labels),
            "contexts": {name: show(path) for name, path in self.contexts.items()},
            "pins": dict(self.pins),
            "cuda": self.cuda,
            "cache_from": [str(ref) for ref in self.cache_from],
            "cache_to": [str(ref) for ref in self.cache_to],
            "secrets": [secret.id for secret in self.secrets],
        }


@dataclass(frozen=True, slots=True)
class MergeStep:
    """Join per-platform images (pushed by native runners) into one manifest list."""

    tag: str
    sources: tuple[str, ...]
    platforms: tuple[str, ...]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_frameworks(matrix: Matrix, names: Sequence[str]) -> tuple[Framework, ...]:
    """``all`` or framework names (each with an image in the matrix), in matrix order."""
    with_images = [image.framework for image in matrix.images]
    if not names:
        msg = f"name a framework or `all`; known: {', '.join(with_images)}"
        raise UsageError(msg)
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted.update(with_images)
            continue
        check_choice("framework", name, with_images)
        wanted.add(name)
    return tuple(matrix.framework(name) for name in with_images if name in wanted)


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


def plan_images(
    matrix: Matrix,
    releases: Sequence[Release],
    frameworks: Sequence[Framework],
    options: ImageOptions,
) -> list[ImageBuild]:
    """Every image build for these releases and frameworks, in matrix order."""
    builds: list[ImageBuild] = []
    for release in releases:
        for framework in frameworks:
            spec = next(image for image in matrix.images if image.framework == framework.name)
            build = _plan_one(matrix, release, framework, spec, options)
            if options.split:
                builds.extend(_split(build, options))
            else:
                builds.append(build)
    return builds


def _slug(text: str) -> str:
    return text.replace(".", "_")


def _platform_arch(platform: str) -> str:
    return platform.split("/", 1)[1].replace("/", "")


def _plan_one(
    matrix: Matrix,
    release: Release,
    framework: Framework,
    spec: ImageSpec,
    options: ImageOptions,
) -> ImageBuild:
    platforms = _platforms(matrix, spec, options)
    cuda: Version = release.cuda[framework.name]
    base_image = (
        options.base_images.get(str(cuda))
        or options.base_images.get("")
        or matrix.cuda_base_images[str(cuda)]
    )
    pins = image_pins(framework, release)
    args: dict[str, str] = {
        "BASE_IMAGE": base_image,
        "PYTHON_VERSION": spec.python,
        "BUILDMATRIX_CUDA": str(cuda),
        "RELEASE": release.name,
    }
    _add_pin_args(matrix, release, framework, pins, args)
    contexts = _add_source_args(matrix, release, options, args)
    _check_against_dockerfile(matrix, release, spec, args)
    cuda_major = str(cuda.major)
    prefix = options.tag_prefix or f"localhost/{matrix.project.lower()}"
    tag = f"{prefix}/{spec.name}:{release.name}-cuda{cuda_major}"
    cache_from, cache_to = _cache_refs(options, framework.name, cuda_major, platforms)
    return ImageBuild(
        name=f"{framework.name}-{_slug(release.name)}-cuda{cuda_major}",
        framework=framework.name,
        release=release.name,
        image=spec.name,
        dockerfile=spec.dockerfile,
        context=spec.dockerfile.parent,
        target=spec.target,
        platforms=platforms,
        args=args,
        labels=_labels(matrix, release, framework, spec, options=options, base_image=base_image, pins=pins),
        tags=(tag,),
        contexts=contexts,
        pins={str(name): str(version) for name, version in pins.items()},
        cuda=str(cuda),
        cache_from=cache_from,
        cache_to=cache_to,
        secrets=options.secrets,
    )


def _platforms(matrix: Matrix, spec: ImageSpec, options: ImageOptions) -> tuple[str, ...]:
    """The image's platforms, or those of them ``--platform`` chose (another is an error)."""
    image_platforms = [matrix.arch(name).platform for name in spec.arch]
    if not options.platforms:
        return tuple(image_platforms)
    for platform in options.platforms:
        if platform not in image_platforms:
            msg = (
                f"image {spec.name} is not built for {platform} "
                f"(matrix.toml [image.{spec.framework}] arch: {', '.join(spec.arch)})"
            )
            raise UsageError(msg)
    return tuple(p for p in image_platforms if p in options.platforms)


def _add_pin_args(
    matrix: Matrix,
    release: Release,
    framework: Framework,
    pins: Mapping[NormalizedName, Version],
    args: dict[str, str],
) -> None:
    """FRAMEWORK, and PINS: ``name[extras]==version`` per pin, each allowed by the framework's
    requirement (the generic Dockerfile stage installs exactly these)."""
    requirements = {canonicalize_name(r.name): r for r in framework.image_requirements(release.pins)}
    entries = []
    for name, version in pins.items():
        requirement = requirements.get(name)
        if requirement is not None and not requirement.specifier.contains(version, prereleases=True):
            msg = (
                f"{matrix.path}: release {release.name} pins {name} {version}, which the "
                f"{framework.name} requirement {requirement} does not allow"
            )
            raise UsageError(msg)
        extras = sorted(requirement.extras) if requirement is not None else []
        entries.append(f"{name}[{','.join(extras)}]=={version}" if extras else f"{name}=={version}")
    args["FRAMEWORK"] = framework.name
    args["PINS"] = " ".join(entries)


def _add_source_args(
    matrix: Matrix, release: Release, options: ImageOptions, args: dict[str, str]
) -> dict[str, Path]:
    """Where the build installs from (toolkit wheels, find-links, index): args and build contexts."""
    wheelhouse = options.wheelhouse or matrix.wheelhouse
    toolkit = _toolkit_requirements(matrix, release, wheelhouse)
    contexts: dict[str, Path] = {}
    if toolkit:
        args["TOOLKIT_REQUIREMENTS"] = " ".join(toolkit)
        contexts["wheelhouse"] = wheelhouse.resolve()
    if options.find_links is not None:
        contexts["find-links"] = options.find_links
    if options.no_index:
        args["NO_INDEX"] = "1"
    elif options.index_url:
        args["INDEX_URL"] = options.index_url
    return contexts


def _labels(
    matrix: Matrix,
    release: Release,
    framework: Framework,
    spec: ImageSpec,
    *,
    options: ImageOptions,
    base_image: str,
    pins: Mapping[NormalizedName, Version],
) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.version": str(release.version),
        "org.opencontainers.image.revision": options.revision,
        "org.opencontainers.image.source": matrix.source_url,
        "org.opencontainers.image.created": options.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.base.name": base_image,
        LABEL_RELEASE: release.name,
        LABEL_FRAMEWORK: framework.name,
        LABEL_CUDA: str(release.cuda[framework.name]),
        LABEL_PYTHON: spec.python,
    }
    return labels | {f"{LABEL_PIN_PREFIX}{name}": str(version) for name, version in pins.items()}


def _cache_refs(
    options: ImageOptions, framework: str, cuda_major: str, platforms: Sequence[str]
) -> tuple[tuple[CacheRef, ...], tuple[CacheRef, ...]]:
    """Registry cache per framework, CUDA major and platform (set of platforms).

    A multi-platform build writes one cache holding every platform (BuildKit
    exports them together) and also reads the per-platform caches that split
    builds on native runners write.
    """
    archs = [_platform_arch(p) for p in platforms]
    keys = list(dict.fromkeys(["-".join(archs), *archs]))
    stem = f"{framework}-cuda{cuda_major}"
    cache_from = (
        tuple(CacheRef(options.cache_from, f"{stem}-{key}") for key in keys) if options.cache_from else ()
    )
    cache_to = (CacheRef(options.cache_to, f"{stem}-{keys[0]}"),) if options.cache_to else ()
    return cache_from, cache_to


def _split(build: ImageBuild, options: ImageOptions) -> list[ImageBuild]:
    """One build per platform, tagged ``<tag>-<arch>``, with that platform's cache."""
    parts = []
    for platform in build.platforms:
        arch = _platform_arch(platform)
        cache_from, cache_to = _cache_refs(
            options, build.framework, str(Version(build.cuda).major), (platform,)
        )
        parts.append(
            replace(
                build,
                name=f"{build.name}-{arch}",
                platforms=(platform,),
                tags=tuple(f"{tag}-{arch}" for tag in build.tags),
                cache_from=cache_from,
                cache_to=cache_to,
            )
        )
    return parts


def merge_steps(builds: Sequence[ImageBuild]) -> list[MergeStep]:
    """For an unsplit plan: the manifest lists that join the per-platform tags."""
    steps = []
    for build in builds:
        for tag in build.tags:
            sources = tuple(f"{tag}-{_platform_arch(p)}" for p in build.platforms)
            steps.append(MergeStep(tag, sources, build.platforms))
    return steps


def merge_name(step: MergeStep) -> str:
    """A file-name-safe name for a merge: its log and digest file are named after it."""
    return "merge-" + step.tag.rsplit("/", 1)[-1].replace(":", "-")


def _toolkit_requirements(matrix: Matrix, release: Release, wheelhouse: Path) -> list[str]:
    """``name==version`` for each of the toolkit's own wheels the wheelhouse has at this release."""
    if not wheelhouse.is_dir():
        return []
    own = {wheel.name for wheel in matrix.wheels}
    found: dict[str, str] = {}
    for path in sorted(wheelhouse.glob("*.whl")):
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if name in own and version == release.version:
            found[str(name)] = f"{name}=={version}"
    return [found[str(w.name)] for w in matrix.wheels if str(w.name) in found]


def _check_against_dockerfile(
    matrix: Matrix, release: Release, spec: ImageSpec, args: Mapping[str, str]
) -> None:
    """The target stage declares every arg the plan passes, and the plan passes every arg
    the stage requires (else exit 2 before any build)."""
    if not spec.dockerfile.is_file():
        msg = f"{matrix.path}: [image.{spec.framework}] dockerfile {spec.dockerfile} does not exist"
        raise UsageError(msg)
    from buildmatrix._paths import read_regular_text

    text = read_regular_text(spec.dockerfile, f"[image.{spec.framework}] dockerfile")
    try:
        declared = stage_args(text, spec.target)
    except ValueError as error:
        msg = f"{spec.dockerfile}: malformed Dockerfile: {error}"
        raise UsageError(msg) from None
    if declared is None:
        msg = f"{spec.dockerfile}: no stage named {spec.target!r} ([image.{spec.framework}] target)"
        raise UsageError(msg)
    missing = [arg for arg, required in declared.items() if required and arg not in args]
    if missing:
        msg = (
            f"{spec.dockerfile} stage {spec.target} needs build arg(s) {', '.join(missing)}: "
            f"the plan for release {release.name} does not compute them"
        )
        raise UsageError(msg)
    unused = [arg for arg in args if arg not in declared]
    if unused:
        msg = (
            f"{spec.dockerfile} stage {spec.target} declares no ARG {', '.join(unused)}: the image "
            f"would not get what the matrix gives it (e.g. its pins)"
        )
        raise UsageError(msg)
