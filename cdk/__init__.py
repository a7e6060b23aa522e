"""The AWS deployment of order-saga: the CDK app, its stacks and one construct per capability."""
