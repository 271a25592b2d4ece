"""MLflow's ``/graphql``: its UI's queries answered by the same handlers as the REST API.

Each root field calls the REST handler that MLflow's own resolver calls (``mlflowGetRun`` ->
``runs/get``, ``mlflowSearchRuns`` -> ``runs/search``, ...), with the GraphQL input turned into
that handler's snake_case arguments and the caller's role checked as for the REST call; the
handler's JSON answer is read by a resolver that maps each camelCase field to its snake_case key.
So GraphQL sees exactly what REST sees, and there is one place to fix either.

Before a query runs, MLflow's limits apply (its messages, which its tests match): at most
``MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS`` (10) root fields and ``MLFLOW_SERVER_GRAPHQL_MAX_ALIASES``
(10) aliases on one level, depth 10, 1,000 selections in all. The answer is MLflow's shape:
``{"data": ..., "errors": [message, ...] | null}``.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from fastapi import Request
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    graphql,
    parse,
)

from cairn.services.gateway.mlflow.calls import ENDPOINTS, Call
from cairn.services.gateway.mlflow.errors import MlflowError, invalid
from cairn.services.gateway.mlflow.graphql_schema import SDL

MAX_DEPTH = 10
MAX_SELECTIONS = 1000
MAX_BODY_BYTES = 1024 * 1024


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _arguments(value: Any) -> Any:
    """A GraphQL input (camelCase) as REST arguments (snake_case), ``None`` fields dropped."""
    if isinstance(value, dict):
        return {_snake(k): _arguments(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_arguments(v) for v in value]
    return value


def _field(source: Any, info: GraphQLResolveInfo, **_: Any) -> Any:
    """Default resolver: ``fileSize`` reads ``file_size`` of the handler's JSON."""
    if isinstance(source, dict):
        name = info.field_name
        return source.get(name, source.get(_snake(name)))
    return getattr(source, info.field_name, None)


def _number(source: Any, info: GraphQLResolveInfo, **_: Any) -> Any:
    """A metric value: NaN (and infinities) as null, as MLflow answers (JSON has no NaN)."""
    value = _field(source, info)
    if isinstance(value, str):
        value = float(value)
    return None if value is None or not math.isfinite(value) else value


def _size(source: Any, info: GraphQLResolveInfo, **_: Any) -> Any:
    """A file's size; 0 for a directory (protobuf's default, which MLflow's answer carries)."""
    return _field(source, info) or 0


def _long(value: Any) -> str:
    return str(int(value))


async def _rest(info: GraphQLResolveInfo, method: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """Answer of the REST handler ``method path`` for ``args``, as the caller."""
    call: Call = info.context
    endpoint = ENDPOINTS.get((method, path))
    if endpoint is None:
        raise MlflowError("ENDPOINT_NOT_FOUND", f"Cairn does not serve {method} {path} yet", 404)
    sub = Call(call.request, call.principal, call.project, call.services, args, {})
    sub.require(endpoint.role)
    return await endpoint.handler(sub)


def _root(method: str, path: str) -> Any:
    async def resolve(_: Any, info: GraphQLResolveInfo, input: dict[str, Any] | None = None) -> dict[str, Any]:
        return await _rest(info, method, path, _arguments(input or {}))
    return resolve


async def _experiment_of_run(run: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    answer = await _rest(info, "GET", "experiments/get", {"experiment_id": run["info"]["experiment_id"]})
    return answer.get("experiment")


async def _model_versions_of_run(run: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    answer = await _rest(info, "GET", "model-versions/search", {"filter": f"run_id='{run['info']['run_id']}'"})
    return answer.get("model_versions", [])


async def _search_datasets(_: Any, info: GraphQLResolveInfo, input: dict[str, Any] | None = None) -> dict[str, Any]:
    """MLflow's dataset summaries (experiment, name, digest, context) of the experiments' runs, from
    the REST handler; as in MLflow's GraphQL, a summary without a context answers ``""``."""
    answer = await _rest(info, "POST", "experiments/search-datasets", _arguments(input or {}))
    return {"dataset_summaries": [{**summary, "context": summary.get("context") or ""}
                                  for summary in answer.get("dataset_summaries", [])]}


def _echo(_: Any, __: GraphQLResolveInfo, inputString: str | None = None) -> dict[str, Any]:  # noqa: N803
    return {"output": inputString}


def _build() -> GraphQLSchema:
    schema = build_schema(SDL)
    long = schema.type_map["LongString"]
    assert isinstance(long, GraphQLScalarType)
    long.coerce_output_value = _long  # type: ignore[method-assign]
    long.coerce_input_value = _long  # type: ignore[method-assign]
    resolvers = {
        ("Query", "test"): _echo, ("Mutation", "testMutation"): _echo,
        ("Query", "mlflowGetExperiment"): _root("GET", "experiments/get"),
        ("Query", "mlflowGetMetricHistoryBulkInterval"): _root("GET", "metrics/get-history-bulk-interval"),
        ("Query", "mlflowGetRun"): _root("GET", "runs/get"),
        ("Query", "mlflowListArtifacts"): _root("GET", "artifacts/list"),
        ("Query", "mlflowSearchModelVersions"): _root("GET", "model-versions/search"),
        ("Query", "mlflowSearchRuns"): _root("POST", "runs/search"),
        ("Mutation", "mlflowSearchRuns"): _root("POST", "runs/search"),
        ("Mutation", "mlflowSearchDatasets"): _search_datasets,
        ("MlflowRunExtension", "experiment"): _experiment_of_run,
        ("MlflowRunExtension", "modelVersions"): _model_versions_of_run,
        ("MlflowFileInfo", "fileSize"): _size,
        ("MlflowMetric", "value"): _number, ("MlflowMetricWithRunId", "value"): _number,
    }
    for (type_name, field_name), resolve in resolvers.items():
        owner = schema.type_map[type_name]
        assert isinstance(owner, GraphQLObjectType)
        owner.fields[field_name].resolve = resolve
    return schema


SCHEMA = _build()


def limit_error(document: DocumentNode) -> str | None:
    """MLflow's limits on a parsed query, with its messages; None when the query is within them."""
    root_fields = max_aliases = selections = 0
    for definition in document.definitions:
        top = getattr(definition, "selection_set", None)
        stack: list[tuple[Any, int]] = [(top, 1)] if top is not None else []
        while stack:
            selection_set, depth = stack.pop()
            if depth > MAX_DEPTH:
                return f"Query exceeds maximum depth of {MAX_DEPTH}"
            aliases = 0
            for selection in selection_set.selections:
                if not isinstance(selection, FieldNode):
                    continue
                root_fields += depth == 1
                aliases += selection.alias is not None
                if selection.selection_set:
                    stack.append((selection.selection_set, depth + 1))
                selections += 1
                if selections > MAX_SELECTIONS:
                    return f"Query exceeds maximum total selections of {MAX_SELECTIONS}"
            max_aliases = max(max_aliases, aliases)
    for what, value, env in (("root fields", root_fields, "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS"),
                             ("aliases", max_aliases, "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES")):
        limit = int(os.environ.get(env, "10"))
        if value > limit:
            return (f"GraphQL queries should have at most {limit} {what}, got {value} {what}. "
                    f"To increase the limit, set the {env} environment variable.")
    return None


async def request_body(request: Request) -> dict[str, Any]:
    """``{"query", "variables", "operationName"}`` from a JSON body (POST) or the query string (GET)."""
    if request.method == "GET":
        params = dict(request.query_params)
        if "variables" in params:
            params["variables"] = json.loads(params["variables"])
        return params
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise invalid(f"a GraphQL request is at most {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise invalid("the GraphQL request body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid("the GraphQL request body must be a JSON object")
    return body


async def execute(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise invalid("a GraphQL request needs a 'query'")
    try:
        problem = limit_error(parse(query))
    except GraphQLError as err:
        return {"data": None, "errors": [err.message]}
    if problem is not None:
        return {"data": None, "errors": [problem]}
    variables = body.get("variables")
    result = await graphql(SCHEMA, query, context_value=call, field_resolver=_field,
                           variable_values=variables if isinstance(variables, dict) else None,
                           operation_name=body.get("operationName"))
    return {"data": result.data, "errors": [e.message for e in result.errors] if result.errors else None}
