"""``buildmatrix images``: build the frameworks' runtime images with every pin from the matrix."""

from __future__ import annotations

import argparse
import datetime
import os
import re
from collections.abc import Iterable
from pathlib import Path

from packaging.version import InvalidVersion, Version

from buildmatrix._call import call, format_command
from buildmatrix._paths import output_dir
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_dry_run, add_format, add_out, add_release, add_tls_verify
from buildmatrix.errors import BuildMatrixError, UsageError, check_choice
from buildmatrix.images import (
    ENGINES,
    BuildxEngine,
    Engine,
    ImageOptions,
    Result,
    Status,
    merge_steps,
    plan_images,
    run_builds,
    run_merges,
    select_engine,
)
from buildmatrix.images.engine import buildah_available, buildx_available, buildx_plugin_available
from buildmatrix.images.plan import ImageBuild, Secret, resolve_frameworks
from buildmatrix.loader import image_ref_problem, load_matrix, select_releases, url_problem
from buildmatrix.model import Matrix

# OCI distribution spec: a repository path component, and an optional registry
# host (with port) in front. Tags are added by the plan, never by the user.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?")
_SECRET_ID = re.compile(r"[A-Za-z0-9_.-]+")

HELP = "build the frameworks' runtime images (multi-arch) with every pin from the matrix"

EPILOG = """\
examples:
  buildmatrix images vllm --dry-run                      the plan: args, labels, tags
  buildmatrix images all --release v0.7.1 --engine buildah
  buildmatrix images vllm --platform linux/arm64 --split --push --tag-prefix REPO
  buildmatrix images vllm --merge --tag-prefix REPO      join per-arch tags into one list
  buildmatrix images vllm --merge --tag-prefix REPO --digest linux/amd64=sha256:... \
      --digest linux/arm64=sha256:...                   ... exactly the per-arch digests verified
  buildmatrix images vllm --base-image mirror/cuda:12.8.1-runtime-ubuntu24.04 \\
      --index-url https://pypi.mirror/simple --secret id=netrc,src=$HOME/.netrc
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "frameworks",
        nargs="*",
        metavar="FRAMEWORK",
        help="frameworks whose image to build (vllm, sglang, trtllm), or `all`",
    )
    add_release(parser, purpose="release to build", default="the matrix's first")
    _selection_flags(parser)
    _registry_flags(parser)
    _input_flags(parser)
    _multi_arch_flags(parser)
    add_out(
        parser,
        metavar="DIR",
        help="where docker-bake.json and the logs go (default: <matrix folder>/out/images)",
    )
    add_dry_run(parser, help="show the plan and commands only")
    add_format(parser)


def _selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform",
        action="append",
        metavar="OS/ARCH",
        help="only these platforms (comma-separated or repeated); default: the image's arches",
    )
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="image builder (default: auto)")


def _registry_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tag-prefix",
        metavar="REPO",
        help="registry/namespace the images are tagged under (default: localhost/<project>)",
    )
    parser.add_argument("--push", action="store_true", help="push the images (needs --tag-prefix)")


def _input_flags(parser: argparse.ArgumentParser) -> None:
    """What the build reads: base image, indexes, local wheels, the build cache, secrets."""
    parser.add_argument(
        "--base-image",
        action="append",
        default=[],
        metavar="[CUDA=]REF",
        help="pinned base image instead of the matrix's CUDA image: REF for every image, "
        "12.8=REF for images on that CUDA (repeatable; e.g. a registry mirror)",
    )
    parser.add_argument("--index-url", metavar="URL", help="Python package index (a mirror)")
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="install only from --find-links and the wheelhouse (air-gapped builds)",
    )
    parser.add_argument(
        "--find-links", type=Path, metavar="DIR", help="a local directory of wheels to install from"
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        metavar="DIR",
        help="the toolkit's own wheels to add when present (default: <matrix folder>/wheelhouse)",
    )
    parser.add_argument("--cache-from", metavar="REF", help="registry cache repository to read (no tag)")
    parser.add_argument(
        "--cache-to",
        metavar="REF",
        help="registry cache repository to write (no tag; set it on protected branches only)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=ID,src=FILE",
        help="a build secret (e.g. id=netrc,src=$HOME/.netrc for index credentials); repeatable",
    )


def _multi_arch_flags(parser: argparse.ArgumentParser) -> None:
    """Per-arch builds on native runners (--split), joined by --merge."""
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--split",
        action="store_true",
        help="one build per platform, tagged <tag>-<arch> (native runners); join them with --merge",
    )
    split.add_argument(
        "--merge",
        action="store_true",
        help="build nothing: join the pushed <tag>-<arch> images into one multi-arch manifest list",
    )
    parser.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="OS/ARCH=DIGEST",
        help="with --merge: the per-arch image to join for that platform, by digest (what its "
        "--split --push printed and verify checked); default: the digest its <tag>-<arch> names now",
    )
    add_tls_verify(
        parser,
        help="with --push/--merge (buildah): require HTTPS with a verified certificate (default: "
        "true; a registry on localhost or 127.0.0.0/8 is always spoken to over plain HTTP)",
    )


# ---------------------------------------------------------------------------
# Flag checks: every value is checked before it can reach a command or the plan.
# ---------------------------------------------------------------------------


def check_repository(value: str, flag: str) -> str:
    """An image repository without tag or digest: ``[host[:port]/]path/to/name``."""
    parts = value.split("/")
    host_like = len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    path = parts[1:] if host_like else parts
    problem = ""
    if host_like and not _HOST.fullmatch(parts[0]):
        problem = f"{parts[0]!r} is not a registry host"
    elif not path or not all(_COMPONENT.fullmatch(part) for part in path):
        problem = "path components are lowercase letters and digits joined by . _ or -"
    elif "@" in value:
        problem = "give a repository, not a digest"
    if problem:
        msg = f"{flag} {value!r}: {problem} (e.g. registry.example.com/team/dynamo, no tag)"
        raise UsageError(msg)
    return value


def parse_base_images(values: Iterable[str], matrix: Matrix) -> dict[str, str]:
    """``REF`` (every image) or ``CUDA=REF`` (images on that CUDA version), each a pinned ref."""
    chosen: dict[str, str] = {}
    for value in values:
        cuda, eq, ref = value.rpartition("=")
        if eq:
            try:
                key = str(Version(cuda))
            except InvalidVersion:
                msg = f"--base-image {value!r}: {cuda!r} is not a CUDA version (e.g. 12.8=REF)"
                raise UsageError(msg) from None
            check_choice("CUDA version", key, list(matrix.cuda_base_images))
        else:
            key = ""
        problem = image_ref_problem(ref)
        if problem:
            msg = f"--base-image {value!r}: {problem}"
            raise UsageError(msg)
        chosen[key] = ref
    return chosen


def check_index_url(value: str) -> str:
    """A plain index URL: credentials (user info, a token in the query) would persist in
    the image's history as a build arg, so they reach a build only as a secret."""
    from buildmatrix.redact import has_credentials, redact

    if has_credentials(value):
        msg = (
            f"--index-url {redact(value)} carries credentials, which would end up in the image "
            "history: pass the plain URL and the credentials as a BuildKit secret, e.g. "
            "--secret id=netrc,src=$HOME/.netrc"
        )
        raise UsageError(msg)
    problem = url_problem(value, ("http", "https"))
    if problem:
        msg = f"--index-url {problem}"
        raise UsageError(msg)
    return value


def check_find_links(value: Path) -> Path:
    if not value.is_dir():
        msg = f"--find-links {value}: not a directory of wheels"
        raise UsageError(msg)
    return value.resolve()


def parse_secret(value: str) -> Secret:
    """``id=NAME,src=FILE`` (``type=file`` allowed), as buildx and buildah take it."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, eq, val = item.partition("=")
        if not eq or key not in ("id", "src", "source", "type") or key in fields:
            msg = f"--secret {value!r}: expected id=NAME,src=FILE"
            raise UsageError(msg)
        fields["src" if key == "source" else key] = val
    if fields.get("type", "file") != "file":
        msg = f"--secret {value!r}: only type=file secrets are supported"
        raise UsageError(msg)
    secret_id = fields.get("id", "")
    if not _SECRET_ID.fullmatch(secret_id):
        msg = f"--secret {value!r}: id must be letters, digits, '.', '_' or '-'"
        raise UsageError(msg)
    src = Path(fields.get("src", "")).expanduser()
    if not fields.get("src") or not src.is_file():
        msg = f"--secret {value!r}: src {src} is not a file"
        raise UsageError(msg)
    if set(str(src.resolve())) & {","}:
        msg = f"--secret {value!r}: the path must not contain ','"
        raise UsageError(msg)
    return Secret(secret_id, src.resolve())


def check_platforms(matrix: Matrix, platforms: Iterable[str]) -> tuple[str, ...]:
    known = [arch.platform for arch in matrix.archs]
    chosen: list[str] = []
    for platform in platforms:
        check_choice("platform", platform, known)
        if platform not in chosen:
            chosen.append(platform)
    return tuple(chosen)


def _created() -> datetime.datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        except ValueError:
            msg = f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds"
            raise UsageError(msg) from None
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _revision(root: Path) -> str:
    try:
        return call("git", "-C", str(root), "rev-parse", "HEAD", capture_stdout=True, echo=False).strip()
    except BuildMatrixError:
        return "unknown"


def options_from_args(args: argparse.Namespace, matrix: Matrix, platforms: tuple[str, ...]) -> ImageOptions:
    if (args.push or args.merge) and not args.tag_prefix:
        msg = "--push and --merge need --tag-prefix REPO (the registry the images go to)"
        raise UsageError(msg)
    return ImageOptions(
        platforms=platforms,
        tag_prefix=check_repository(args.tag_prefix, "--tag-prefix") if args.tag_prefix else None,
        base_images=parse_base_images(args.base_image, matrix),
        index_url=check_index_url(args.index_url) if args.index_url else None,
        no_index=args.no_index,
        find_links=check_find_links(args.find_links) if args.find_links else None,
        wheelhouse=args.wheelhouse.resolve() if args.wheelhouse else None,
        cache_from=check_repository(args.cache_from, "--cache-from") if args.cache_from else None,
        cache_to=check_repository(args.cache_to, "--cache-to") if args.cache_to else None,
        secrets=tuple(parse_secret(value) for value in args.secret),
        split=args.split,
        created=_created(),
        revision=_revision(matrix.root.resolve()),
    )


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    frameworks = resolve_frameworks(matrix, args.frameworks)
    releases = select_releases(matrix, args.release) if args.release else matrix.releases[:1]
    if args.no_index and args.index_url:
        msg = "--no-index and --index-url contradict each other: pick one"
        raise UsageError(msg)
    platforms = check_platforms(
        matrix, [p.strip() for value in args.platform or [] for p in value.split(",") if p.strip()]
    )
    root = matrix.root.resolve()
    options = options_from_args(args, matrix, platforms)
    builds = plan_images(matrix, releases, frameworks, options)
    out_dir = output_dir(args.out or root / "out" / "images", "--out", create=not args.dry_run).resolve()
    engine = select_engine(args.engine, root, out_dir, dry_run=args.dry_run, tls_verify=args.tls_verify)
    if args.digest and not args.merge:
        msg = "--digest names the per-arch images of a --merge"
        raise UsageError(msg)

    if args.merge:
        from buildmatrix.images.merge import parse_digest_flags, pin_merge_sources, with_given_digests

        steps = merge_steps(builds)
        digests = parse_digest_flags(args.digest, tuple(p for step in steps for p in step.platforms))
        if args.dry_run:
            shown = [with_given_digests(step, digests) for step in steps]
            commands = [c for step in shown for c in engine.merge_commands(step)]
            return _show_plan(args, engine, builds, commands, root)
        steps = [pin_merge_sources(step, digests, tls_verify=args.tls_verify) for step in steps]
        results = run_merges(engine, steps, log_dir=out_dir / "logs", reporter=ui.SCREEN)
        return _summary(args, results)

    if args.dry_run:
        engine.prepare(builds)
        commands = [c for build in builds for c in engine.build_commands(build, push=args.push)]
        return _show_plan(args, engine, builds, commands, root)
    results = run_builds(engine, builds, push=args.push, log_dir=out_dir / "logs", reporter=ui.SCREEN)
    return _summary(args, results)


def _show_plan(
    args: argparse.Namespace,
    engine: Engine,
    builds: list[ImageBuild],
    commands: list[list[str]],
    root: Path,
) -> int:
    usable = buildx_available() if isinstance(engine, BuildxEngine) else buildah_available()
    # Where nothing could run the plan, say so rather than name an engine that is not there.
    engine_name = engine.name if usable else f"none usable here (the {engine.name} plan is shown)"
    bake_print = None
    if isinstance(engine, BuildxEngine) and not args.merge and buildx_plugin_available():
        bake_print = engine.print_definition()
    if args.format == "json":
        data: dict[str, object] = {
            "engine": engine.name,
            "engine_usable": usable,
            "images": [build.to_json(root) for build in builds],
            "commands": [format_command(c) for c in commands],
        }
        if isinstance(engine, BuildxEngine) and not args.merge:
            data["bake_file"] = str(engine.bake_file)
        if bake_print is not None:
            data["bake_print"] = bake_print
        ui.emit_json(data)
        return 0
    _print_plan_table(builds, engine_name)
    if isinstance(engine, BuildxEngine) and not args.merge:
        ui.stdout.print(f"bake file: {engine.bake_file}", markup=False)
    for command in commands:
        ui.stdout.print("$ " + format_command(command), markup=False)
    if bake_print is not None:
        ui.stdout.print("$ docker buildx bake --print", markup=False)
        ui.stdout.print(bake_print, markup=False)
    return 0


def _print_plan_table(builds: list[ImageBuild], engine_name: str) -> None:
    rows = [
        [
            build.name,
            ", ".join(build.platforms),
            "\n".join(build.tags),
            build.args["BASE_IMAGE"],
            " ".join(f"{name}=={version}" for name, version in build.pins.items()),
        ]
        for build in builds
    ]
    ui.stdout.print(
        ui.table(
            f"{len(builds)} image build(s), engine {engine_name} (dry run)",
            ["image", "platforms", "tags", "base", "pins"],
            rows,
        )
    )


def _summary(args: argparse.Namespace, results: list[Result]) -> int:
    failed = [r for r in results if r.status is Status.FAILED]
    if args.format == "json":
        ui.emit_json({"results": [r.to_json() for r in results], "failed": len(failed)})
    else:
        rows = [
            [
                r.name,
                ", ".join(r.platforms),
                "\n".join(r.tags),
                str(r.status),
                f"{r.seconds:.0f}s",
                str(r.log),
            ]
            for r in results
        ]
        ui.stdout.print(
            ui.table(
                f"{len(results) - len(failed)} of {len(results)} image(s) ok",
                ["image", "platforms", "tags", "status", "time", "log"],
                rows,
            )
        )
        for result in failed:
            ui.stderr.print(f"{result.name}: {result.error} (see {result.log})", markup=False)
        for result in results:
            if result.digest:  # what CI hands to `verify --image docker://...` and `--merge --digest`
                repository = result.tags[0].rsplit(":", 1)[0]
                ui.stdout.print(f"pushed {result.tags[0]}: {repository}@{result.digest}", markup=False)
    return 1 if failed else 0
