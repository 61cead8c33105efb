"""``buildmatrix plan``: show the targets the matrix expands to."""

from __future__ import annotations

import argparse

from buildmatrix import ci
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_format, add_release
from buildmatrix.errors import check_choice
from buildmatrix.expand import Plan, TargetKind, WheelTarget, expand
from buildmatrix.loader import load_matrix, select_releases

HELP = "expand the matrix into build targets (wheels and images) and print them"


def configure(parser: argparse.ArgumentParser) -> None:
    add_release(parser, purpose="only this release", default="every release")
    parser.add_argument("--kind", choices=[k.value for k in TargetKind], help="only wheels or images")
    parser.add_argument("--framework", metavar="F", help="only images of this framework")
    parser.add_argument("--arch", metavar="A", help="only this CPU arch (x86_64, aarch64)")
    parser.add_argument("--python", metavar="X.Y", help="only targets for this Python")
    add_format(parser, extra=["github"])
    parser.add_argument(
        "--shard",
        type=int,
        metavar="N",
        help=f"with --format github: print shard N (from 0) of at most {ci.MAX_JOBS} jobs",
    )


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    releases = select_releases(matrix, args.release)
    if args.framework is not None:
        check_choice("framework", args.framework, [f.name for f in matrix.frameworks])
    if args.arch is not None:
        check_choice("arch", args.arch, [a.name for a in matrix.archs])
    plan = expand(
        matrix,
        releases=releases,
        kind=TargetKind(args.kind) if args.kind else None,
        framework=args.framework,
        arch=args.arch,
        python=args.python,
    )
    if args.format == "json":
        ui.emit_json([target.to_json() for target in plan])
    elif args.format == "github":
        ui.emit_json(ci.github_matrix(plan.targets, shard=args.shard))
    else:
        _print_table(plan)
    return 0


def _print_table(plan: Plan) -> None:
    rows = []
    for target in plan:
        if isinstance(target, WheelTarget):
            name, cuda = str(target.package.name), ""
            detail = f"{target.python_tag}-{target.platform_tag}"
        else:
            name, cuda = target.framework.name, str(target.cuda)
            detail = " ".join(f"{pin}=={version}" for pin, version in target.pins.items())
        rows.append(
            [target.release.name, str(target.kind), name, target.arch.name, target.python, cuda, detail]
        )
    ui.stdout.print(
        ui.table(
            f"{len(plan)} targets",
            ["release", "kind", "package / framework", "arch", "python", "cuda", "tags / pins"],
            rows,
        )
    )
    for exclusion in plan.excluded:
        ui.stdout.print(f"excluded {exclusion.target.id}: rule {exclusion.rule.id}", markup=False)
