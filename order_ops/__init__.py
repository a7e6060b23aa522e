"""The operator tools: attention, audit, dlq, executions and inventory. They work on the local
stack and on a deployed environment through the same code: resources found by their manifest
names and the environment's name (`ORDER_SAGA_ENVIRONMENT`), credentials from the standard AWS
chain. They depend on the domain package and boto3, never on the local stack."""
