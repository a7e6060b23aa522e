"""The line between production and the local stack, as imports: no production package imports
devstack (the local emulation), the operator tools depend on the domain package and boto3 only,
and the auditor does not ship in every Lambda."""

import ast
import sys
from pathlib import Path

import pytest

from devstack.paths import REPO_ROOT

PRODUCTION = {
    "order_saga": REPO_ROOT / "layers" / "common" / "python" / "order_saga",
    "grpc_edge": REPO_ROOT / "grpc_edge",
    "functions": REPO_ROOT / "functions",
    "cdk": REPO_ROOT / "cdk",
    "order_client": REPO_ROOT / "order_client",
    "order_ops": REPO_ROOT / "order_ops",
}
# What the operator tools may import besides the standard library and themselves.
OPERATOR_TOOLS_MAY_USE = {"order_saga", "boto3", "botocore", "click"}


def run_time_imports(tree: ast.AST) -> list[str]:
    """The modules a tree imports when it runs (not those under `if TYPE_CHECKING:`)."""
    if isinstance(tree, ast.If) and isinstance(tree.test, ast.Name) and tree.test.id == "TYPE_CHECKING":
        return []
    if isinstance(tree, ast.Import):
        return [alias.name for alias in tree.names]
    if isinstance(tree, ast.ImportFrom):
        return [tree.module] if tree.level == 0 and tree.module else []
    return [name for child in ast.iter_child_nodes(tree) for name in run_time_imports(child)]


def top_level_imports(folder: Path) -> dict[str, set[str]]:
    """Every absolute import of the folder's modules, by its top-level package, with the files."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for name in run_time_imports(ast.parse(path.read_text())):
            found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(folder)))
    return found


@pytest.mark.parametrize("package", sorted(PRODUCTION))
def test_no_production_package_imports_the_local_stack(package: str) -> None:
    assert "devstack" not in top_level_imports(PRODUCTION[package]), top_level_imports(PRODUCTION[package])


def test_the_operator_tools_depend_on_the_domain_package_and_boto3_only() -> None:
    imports = top_level_imports(PRODUCTION["order_ops"])
    foreign = set(imports) - sys.stdlib_module_names - OPERATOR_TOOLS_MAY_USE - {"order_ops"}
    assert not foreign, {name: imports[name] for name in foreign}


def test_the_domain_package_that_every_lambda_ships_leaves_the_operator_tools_out() -> None:
    imports = top_level_imports(PRODUCTION["order_saga"])
    assert not {"order_ops", "order_client", "grpc_edge"} & set(imports)


def test_the_rule_sees_an_import_of_the_local_stack(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("from devstack.paths import REPO_ROOT\n")
    assert top_level_imports(tmp_path) == {"devstack": {"module.py"}}
