"""Powertools Logger, Tracer and Metrics, configured once for every function and the edge.

Service name, log level and metrics namespace come from Powertools' own environment variables
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_NAMESPACE), which the
function definitions set; the defaults below keep a bare import usable in tests and scripts.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = "OrderSaga"

logger = Logger(service="order-saga")
tracer = Tracer(service="order-saga")
metrics = Metrics(namespace=METRICS_NAMESPACE)
