"""The custom CloudWatch metrics the deployment publishes, read from the code and the templates.

CloudWatch bills each unique namespace, metric name and set of dimension values as one custom
metric. The functions publish theirs with Powertools Metrics (EMF), each with the dimension
`service` (POWERTOOLS_SERVICE_NAME: the function's service); a saga step adds the dimension `Step`
(its handler's name, `order_saga.lambda_step.saga_step`). What each function publishes is read
from its handler module (the syntax tree, nothing is imported or run):

- a handler decorated with `saga_step(..., counts="Name")` publishes the metrics `saga_step`
  publishes itself (the names of the `add_metric` calls in lambda_step.py), and `Name`;
- any other handler publishes every `add_metric(name=...)` of its module, whose name is a string,
  a module constant (`reconcile.MONEY_VIOLATIONS`, read in that module), or every value of a
  module-level dict it indexes (`ACTION_METRICS[outcome.action]`).

A name in any other form stops the estimate (UnreadableMetric): write it in one of these forms.
The edge's metrics come from its collector's configuration in the task definition: the awsemf
exporter's metric declarations, one metric per value of each declared dimension.
"""

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from order_saga.functions import FUNCTIONS, FunctionSpec
from order_saga.observability import METRICS_NAMESPACE

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_ROOT = REPO_ROOT / "layers" / "common" / "python"
LAMBDA_STEP = LAYER_ROOT / "order_saga" / "lambda_step.py"
STEP_DIMENSION = "Step"
# How many values a dimension of the edge's metrics takes: the gRPC status codes (grpc.io, "Status
# codes and their use in gRPC": 17). An upper bound: a code no call ended with in an hour is not
# billed for that hour.
DIMENSION_VALUES = {"grpc_code": 17}


class UnreadableMetric(ValueError):
    """A metric whose name or dimensions the estimate cannot read from the code."""


@dataclass(frozen=True, order=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _add_metric_names(tree: ast.AST) -> Iterator[ast.expr]:
    """The `name=` argument of every `.add_metric(...)` call in the tree."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_metric"
        ):
            names = [k.value for k in node.keywords if k.arg == "name"]
            if not names:
                raise UnreadableMetric(f"add_metric without name= at line {node.lineno}")
            yield names[0]


def _module_constant(module: str, constant: str) -> str:
    """A string assigned at module level in one of the layer's modules."""
    path = LAYER_ROOT.joinpath(*module.split(".")).with_suffix(".py")
    for node in _parse(path).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(isinstance(t, ast.Name) and t.id == constant for t in targets)
            if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    raise UnreadableMetric(f"no string {constant} in {module}")


def _imported_modules(tree: ast.Module) -> dict[str, str]:
    """`from package import module` and `import module as alias`: alias -> module's dotted name."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.asname or a.name: a.name for a in node.names}
    return found


def _module_dicts(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level dicts of strings: name -> their values."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
            strings = [v.value for v in value.values if isinstance(v, ast.Constant)]
            if len(strings) == len(value.values) and all(isinstance(s, str) for s in strings):
                found[target.id] = [str(s) for s in strings]
    return found


def names_in(path: Path, tree: ast.Module, name: ast.expr) -> list[str]:
    """The metric names an `add_metric(name=...)` argument of the module at `path` can take."""
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return [name.value]
    if isinstance(name, ast.Attribute) and isinstance(name.value, ast.Name):
        module = _imported_modules(tree).get(name.value.id)
        if module:
            return [_module_constant(module, name.attr)]
    if isinstance(name, ast.Subscript) and isinstance(name.value, ast.Name):
        values = _module_dicts(tree).get(name.value.id)
        if values:
            return values
    raise UnreadableMetric(
        f"{path.relative_to(REPO_ROOT)}:{name.lineno}: the metric name `{ast.unparse(name)}` is not a "
        "string, a module constant or a module-level dict's value; cdk/custom_metrics.py cannot count it"
    )


def _saga_step_counts(handler: ast.FunctionDef) -> list[str] | None:
    """The `counts=` of the handler's `saga_step` decorator ([] without one); None: not a saga step."""
    for decorator in handler.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "saga_step":
            counts = [k.value for k in decorator.keywords if k.arg == "counts"]
            if not counts:
                return []
            if isinstance(counts[0], ast.Constant) and isinstance(counts[0].value, str):
                return [counts[0].value]
            raise UnreadableMetric(f"{handler.name}: saga_step(counts=...) is not a string")
    return None


def _saga_step_own() -> list[str]:
    """The metrics `saga_step` publishes for every step (its literal add_metric names)."""
    names = _add_metric_names(_parse(LAMBDA_STEP))
    return [n.value for n in names if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def function_metrics(spec: FunctionSpec) -> set[Metric]:
    module, function = spec.handler.split(".")
    path = REPO_ROOT / spec.code_dir / f"{module}.py"
    tree = _parse(path)
    (handler,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    service = ("service", spec.service)
    counts = _saga_step_counts(handler)
    if counts is not None:
        dimensions = tuple(sorted([service, (STEP_DIMENSION, function)]))
        names = _saga_step_own() + counts
    else:
        dimensions = (service,)
        names = [n for expr in _add_metric_names(tree) for n in names_in(path, tree, expr)]
    return {Metric(METRICS_NAMESPACE, name, dimensions) for name in names}


def function_metric_set() -> set[Metric]:
    """Every metric the functions publish."""
    return {metric for spec in FUNCTIONS for metric in function_metrics(spec)}


def _text(value: Any) -> str:
    """A template string, a `Fn::Join` of strings and references rendered with each reference as
    `<ref>` (they only fill values inside the collector's configuration)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(part if isinstance(part, str) else "<ref>" for part in parts)
    raise UnreadableMetric(f"the collector's configuration is not a string: {json.dumps(value)[:80]}")


def _collector_configs(stacks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The OpenTelemetry collectors' configurations (AOT_CONFIG_CONTENT) in the task definitions."""
    for template in stacks:
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::ECS::TaskDefinition":
                continue
            for container in resource["Properties"].get("ContainerDefinitions", []):
                for variable in container.get("Environment", []):
                    if variable["Name"] == "AOT_CONFIG_CONTENT":
                        config: dict[str, Any] = json.loads(_text(variable["Value"]))
                        yield config


def edge_metric_count(stacks: list[dict[str, Any]]) -> int:
    """Metrics the collectors' awsemf exporters publish: per declared metric and dimension set,
    the product of the dimensions' values."""
    count = 0
    for config in _collector_configs(stacks):
        for exporter, settings in config.get("exporters", {}).items():
            if exporter.split("/")[0] != "awsemf":
                continue
            for declaration in settings.get("metric_declarations", []):
                for dimension_set in declaration["dimensions"]:
                    unknown = set(dimension_set) - DIMENSION_VALUES.keys()
                    if unknown:
                        raise UnreadableMetric(
                            f"no value count for the dimension(s) {', '.join(sorted(unknown))}: add it to "
                            "DIMENSION_VALUES in cdk/custom_metrics.py"
                        )
                    values = 1
                    for dimension in dimension_set:
                        values *= DIMENSION_VALUES[dimension]
                    count += values * len(declaration["metric_name_selectors"])
    return count
