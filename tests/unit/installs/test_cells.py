"""buildmatrix.installs.cells: the cells follow the matrix rules and OS rows."""

from __future__ import annotations

from buildmatrix.model import Matrix


def test_cells_follow_the_matrix_rules_and_os_rows(real_matrix: Matrix) -> None:
    from buildmatrix.installs.cells import plan_cells

    release = real_matrix.find_release("v0.7.1")
    assert release is not None
    cells = plan_cells(real_matrix, [release])
    keys = {(c.key.extra, c.key.python, c.key.arch) for c in cells}
    assert ("trtllm", "3.11", "x86_64") not in keys  # TensorRT-LLM not on Python 3.11
    assert ("trtllm", "3.12", "aarch64") in keys
    targets: dict[str, set[str]] = {}
    for cell in cells:
        targets.setdefault(cell.key.arch, set()).add(str(cell.key.target_glibc))
    # The claimed 2.28 plus each OS row's glibc: Ubuntu 22.04/24.04, CentOS Stream 9, Amazon Linux 2023.
    assert targets == {"x86_64": {"2.28", "2.34", "2.35", "2.39"}, "aarch64": {"2.28", "2.39"}}
    assert {c.requirement for c in cells} == {f"ai-dynamo[{e}]==0.7.1" for e in ("vllm", "sglang", "trtllm")}
    assert all(c.indexes == ("https://pypi.org/simple",) for c in cells)
